"""YB-4.1.1: exam reports from the PACS's text view ``View_Pacs_Text_Info`` (检查文字视图), read
through a SQLAlchemy URL like the ``db`` sources, as ``exam`` records (``exammaster`` /
``exam_subitem``).

Seed 003 names the view but not its columns (its field table is empty), so huren defines them:
one row per exam item of a report (a report with one item is one row), the columns below by
default, every one of them renamed with ``columns`` (``exammaster`` field → view column) and
``item_columns`` (``exam_subitem`` field → view column). A field of the seed's tables that is not
listed is read from a column of its own name (``author_name``, ``report_title`` …); a column the
view does not have is left out (the field is empty, or ``defaults`` gives it), so a view that
spells only some of them works as it is. The view must have the modification time and the report
number.

=========================  ===============================  =================================
view column (default)      field                            meaning
=========================  ===============================  =================================
REPORT_NO                  report_form_no (both tables)     报告单号 (required)
ACCESS_NO                  pacs_id                          检查号 / accessNumber
PATIENT_ID                 patient_id                       病人ID
EVENT_TYPE / EVENT_NO      event_type / event_no            门诊住院类别 / 就诊流水号
ID_TYPE / ID_NO            id_type_code / id_no             证件类别 / 证件号码
PATIENT_NAME               name                             姓名
PATIENT_SEX                sex_code (sex_name derived)      性别 (1 男, 2 女; 男 / 女 taken too)
BIRTH_DATE                 birth_date                       出生日期
MODALITY                   class_code, class_name           检查类型 (CT, MR …)
ITEM_CODE / ITEM_NAME      exam_item_code / exam_item_name  检查项目
BODY_PART_CODE / BODY_PART exam_site_code / body_part_name  检查部位
EXAM_TIME                  performer_dtime                  检查时间
REPORT_TIME / REPORT_DOCTOR  author_dtime / author_name     报告时间 / 报告医生
APPROVE_TIME / APPROVE_DOCTOR  authenticator_dtime / _name  审核时间 / 审核医生
MODIFY_TIME                last_update_dtime (both)         最后修改时间 (required; the watermark)
FINDINGS                   image_descr                      影像所见
CONCLUSION                 conclusion                       影像结论 (诊断意见)
ABNORMAL                   is_abnormal                      是否异常
STUDY_UID                  study_instance_uid               Study Instance UID (YB-4.2 C-MOVE)
DATA_STATUS                data_status                      数据状态 (``void_values``: withdrawn)
ORG_CODE                   org_code (both)                  机构编码 (default: [platform] org_code)
IMAGE_PATH                 — (``image_path_columns``)       影像文件路径或 http 链接 (YB-4.2 mode 2)
=========================  ===============================  =================================

Keys of ``[pacs_text]`` (or several ``[[pacs_text]]`` tables)::

    name = "pacs_text"
    url = "mssql+pyodbc://ro:…@pacs-db/PACS?driver=ODBC+Driver+18+for+SQL+Server"
    view = "View_Pacs_Text_Info"
    columns = { report_form_no = "BGDH", pacs_id = "JCH" }   # exammaster field → view column
    item_columns = { exam_item_code = "XMDM" }               # exam_subitem field → view column
    defaults = { event_type = "1" }                          # constants for fields the view lacks
    image_path_columns = ["IMAGE_PATH"]                      # columns holding file paths / URLs
    image_path_separator = ";"                               # several paths in one column
    void_column = "data_status"                              # field (or column) marking a withdrawn report
    void_values = ["0"]
    batch_size = 200
    start = "2024-01-01"
    time_as = "auto"

Reading, watermarks and voids are the ``db`` source's (:mod:`~huren.gateway.sources.dbview`): rows
after the watermark in (modification time, report key) order; the items of a report are the
view's rows with its report number.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, column, literal_column, select
from sqlalchemy.exc import SQLAlchemyError

from huren.domain.fields import EXAM_SUBITEM, EXAMMASTER, LAB_KEY
from huren.gateway.model import Record
from huren.gateway.sources.base import VOID_VALUES, Conf, ConfigError, SourceError, to_text
from huren.gateway.sources.dbview import TIME, DbViewSource, Watermark, lowered, pick, raw_time, readonly_engine, view

if TYPE_CHECKING:
    from huren.gateway.mapping import Mapper

log = logging.getLogger("huren.gateway.sources.pacs_text")

VIEW = "View_Pacs_Text_Info"
#: the default view column of each exammaster field (huren's definition: the seed gives none)
MASTER_COLUMNS: dict[str, str] = {
    "last_update_dtime": "MODIFY_TIME", "org_code": "ORG_CODE", "report_form_no": "REPORT_NO",
    "pacs_id": "ACCESS_NO", "patient_id": "PATIENT_ID", "event_type": "EVENT_TYPE", "event_no": "EVENT_NO",
    "id_type_code": "ID_TYPE", "id_no": "ID_NO", "name": "PATIENT_NAME", "sex_code": "PATIENT_SEX",
    "birth_date": "BIRTH_DATE", "class_code": "MODALITY", "class_name": "MODALITY", "performer_dtime": "EXAM_TIME",
    "author_dtime": "REPORT_TIME", "author_name": "REPORT_DOCTOR", "authenticator_dtime": "APPROVE_TIME",
    "authenticator_name": "APPROVE_DOCTOR", "image_descr": "FINDINGS", "conclusion": "CONCLUSION",
    "is_abnormal": "ABNORMAL", "study_instance_uid": "STUDY_UID", "data_status": "DATA_STATUS",
}
#: the default view column of each exam_subitem field
ITEM_COLUMNS: dict[str, str] = {
    "last_update_dtime": "MODIFY_TIME", "org_code": "ORG_CODE", "event_no": "EVENT_NO", "report_form_no": "REPORT_NO",
    "exam_site_code": "BODY_PART_CODE", "body_part_name": "BODY_PART", "exam_item_code": "ITEM_CODE",
    "exam_item_name": "ITEM_NAME", "effective_dtime": "APPROVE_TIME",
}
IMAGE_PATH_COLUMNS = ("IMAGE_PATH",)
KEYS = (
    "url", "view", "columns", "item_columns", "defaults", "image_path_columns", "image_path_separator",
    "void_column", "void_values", "batch_size", "start", "time_as",
)
#: GB/T 2261.1 sex codes and their names (the view may hold either)
SEX_NAMES = {"0": "未知的性别", "1": "男", "2": "女", "9": "未说明的性别"}
SEX_CODES = {v: k for k, v in SEX_NAMES.items()} | {"男性": "1", "女性": "2", "M": "1", "F": "2"}


class PacsTextSource(DbViewSource):
    """Exam reports from ``View_Pacs_Text_Info`` (see the module docstring); also the rows' study
    UIDs and image paths for the YB-4.2 image pull (:meth:`studies`)."""

    def __init__(
        self, name: str, engine: Any, *, view_name: str = VIEW, image_path_columns: Sequence[str] = IMAGE_PATH_COLUMNS,
        image_path_separator: str = ";", **kw: Any,
    ) -> None:
        super().__init__(name, engine, "exam", view_name, view_name, **kw)
        self.view_name = view_name
        self.image_path_columns = [c.lower() for c in image_path_columns]
        self.separator = image_path_separator
        self._present: set[str] | None = None

    # -- the view's own columns -----------------------------------------------------------------
    def discover(self) -> None:
        """Leave out mapped columns the view does not have (their fields empty or defaulted); a
        SourceError when it lacks the modification time or the report number."""
        if self._present is not None:
            return
        try:
            with self.engine.connect() as conn:
                q: Select[Any] = select(literal_column("*")).select_from(view(self.view_name)).limit(0)
                names = conn.execute(q).keys()
                present = {str(k).lower() for k in names}
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc.__class__.__name__)[:300]
            raise SourceError(f"{self.name}：读取检查文字视图 {self.view_name} 失败：{detail}") from exc
        for field in (TIME, "report_form_no"):
            col = self.columns.get(field, field)
            if col not in present:
                raise SourceError(f"{self.name}：视图 {self.view_name} 中没有 {field} 对应的列 {col.upper()}（可在 columns 中改名）")
        gone = sorted(f for f, c in self.columns.items() if c not in present)
        self.columns = {f: c for f, c in self.columns.items() if c in present}
        self.item_columns = {f: c for f, c in self.item_columns.items() if c in present}
        self.void_column = self.void_column if self.void_column in present else ""
        self.image_path_columns = [c for c in self.image_path_columns if c in present]
        self.tie = [f for f in LAB_KEY if f in self.columns]
        if gone:
            log.info("%s：视图 %s 没有这些字段的列，按空值或 defaults 处理：%s", self.name, self.view_name, "、".join(gone))
        self._present = present

    # -- records ------------------------------------------------------------------------------
    def _record(self, row: Mapping[str, Any], items: list[dict[str, Any]]) -> Record:
        rec = super()._record(row, items)
        master = rec.payload.get("exammaster")
        if isinstance(master, dict):
            code, sex = master.get("sex_code", ""), master.get("sex_name", "")
            if code in SEX_CODES:  # the view holds the name where the code belongs
                code, sex = SEX_CODES[code], sex or code
            master["sex_code"], master["sex_name"] = code, sex or SEX_NAMES.get(code, "")
        return rec

    def poll(self, watermark: str) -> Iterator[Record]:
        """The reports after ``watermark``; a report listed by several rows (one per item) once."""
        self.discover()
        last: dict[str, Any] = {}
        for rec in super().poll(watermark):
            if last.get(rec.key) == rec.payload:
                continue
            last[rec.key] = rec.payload
            yield rec

    # -- for the image pull (YB-4.2) --------------------------------------------------------------
    def image_paths(self, row: Mapping[str, Any]) -> list[str]:
        out: list[str] = []
        for col in self.image_path_columns:
            text = to_text(row.get(col))
            for part in text.replace("\r", "\n").replace("\n", self.separator).split(self.separator) if text else []:
                if part.strip() and part.strip() not in out:
                    out.append(part.strip())
        return out

    def studies(self, watermark: str) -> Iterator[tuple[dict[str, str], list[str], str]]:
        """(exammaster fields, image paths, watermark after the row) of every row after ``watermark``."""
        self.discover()
        try:
            wm = Watermark.parse(watermark or self.start)
        except (ValueError, IndexError) as exc:
            raise SourceError(f"{self.name}：无法识别的水位“{watermark[:200]}”") from exc
        while True:
            try:
                rows = self._masters(wm)
            except SQLAlchemyError as exc:
                raise SourceError(f"{self.name}：读取检查文字视图 {self.view_name} 失败：{exc}") from exc
            for row in rows:
                master = self.master_fields(row)
                wm = Watermark(raw_time(row.get(self._col(TIME))), tuple(to_text(row.get(self._col(f))) for f in self.tie))
                yield master, self.image_paths(row), wm.dump()
            if len(rows) < self.batch_size:
                return

    def rows_where(self, field: str, values: Sequence[str]) -> list[tuple[dict[str, str], list[str]]]:
        """The rows whose ``field`` (an exammaster field, e.g. study_instance_uid) is one of ``values``."""
        self.discover()
        col = self.columns.get(field)
        if not col or not values:
            return []
        q: Select[Any] = select(literal_column("*")).select_from(view(self.view_name)).where(column(col).in_(list(values)))
        try:
            with self.engine.connect() as conn:
                rows = [lowered(r) for r in conn.execute(q).mappings()]
        except SQLAlchemyError as exc:
            raise SourceError(f"{self.name}：读取检查文字视图 {self.view_name} 失败：{exc}") from exc
        return [(self.master_fields(r), self.image_paths(r)) for r in rows]

    def master_fields(self, row: Mapping[str, Any]) -> dict[str, str]:
        return pick(row, EXAMMASTER, self.columns, self.defaults)

    def is_void(self, row_master: Mapping[str, str]) -> bool:
        return bool(self.void_column) and row_master.get("data_status", "") in self.void_values


def build(raw: Mapping[str, Any], *, org_code: str, base_dir: Path | None = None, mapper: Mapper | None = None) -> PacsTextSource:
    """The source a ``[pacs_text]`` table describes; ConfigError naming the key."""
    conf = Conf({"type": "pacs_text", **raw}, KEYS)
    master_fields = [f.name for f in EXAMMASTER]
    item_fields = [f.name for f in EXAM_SUBITEM]
    columns = MASTER_COLUMNS | conf.table("columns", master_fields)
    item_columns = ITEM_COLUMNS | conf.table("item_columns", item_fields)
    defaults = {"org_code": org_code} | conf.table("defaults", sorted({*master_fields, *item_fields}))
    batch_size = conf.integer("batch_size", 200)
    if batch_size > 1000:
        raise ConfigError(f"{conf.where('batch_size')} 不能大于 1000")
    time_as = conf.text("time_as", "auto")
    if time_as not in ("auto", "text", "datetime"):
        raise ConfigError(f"{conf.where('time_as')} 应为 auto、text 或 datetime")
    separator = conf.text("image_path_separator", ";")
    if not separator:
        raise ConfigError(f"{conf.where('image_path_separator')} 不能为空")
    return PacsTextSource(
        conf.name,
        readonly_engine(conf.text("url"), base_dir, conf.where("url")),
        view_name=conf.text("view", VIEW),
        image_path_columns=conf.strings("image_path_columns", IMAGE_PATH_COLUMNS),
        image_path_separator=separator,
        columns=columns,
        item_columns=item_columns,
        defaults=defaults,
        void_column=conf.text("void_column", "data_status"),
        void_values=conf.strings("void_values", VOID_VALUES),
        batch_size=batch_size,
        start=conf.text("start", ""),
        time_as=time_as,
        mapper=mapper,
    )
