"""The demo's lab panels: their items with units, reference ranges and methods, and the values
derived from others (CBC indices, bilirubin and globulin, chloride, INR)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Analyte:
    """A quantitative (PQ) item.  ``low``/``high`` None means an open-ended range."""

    key: str
    code: str
    std_name: str
    local_name: str
    unit: str
    low: float | None
    high: float | None
    decimals: int
    method: str = ""
    female: tuple[float | None, float | None] | None = None
    step: float = 0.0  # quantise drawn values (e.g. dipstick pH)
    p_abnormal: float = 0.07

    def limits(self, sex_code: str) -> tuple[float | None, float | None]:
        if sex_code == "2" and self.female is not None:
            return self.female
        return self.low, self.high


@dataclass(frozen=True)
class Qual:
    """A qualitative (CD) item; ``outcomes`` are (value, STD_OBSERVATION_INTERPRET, weight)."""

    key: str
    code: str
    std_name: str
    local_name: str
    outcomes: tuple[tuple[str, str, float], ...]
    method: str = ""
    notes: str = "阴性"


_Item = Analyte | Qual


@dataclass(frozen=True)
class Panel:
    title: str  # report_title
    loinc_class: str  # labmaster.class_code (LOINC CLASS of the report)
    class_name: str
    class_local_name: str
    specimen: str  # HL7 table 0487 specimen type code
    device: str  # key into the institution's devices (profiles.Profile.devices)
    items: tuple[_Item, ...]
    weight: float
    min_level: int = 1
    derive: Callable[[dict[str, float]], None] | None = None
    patterns: tuple[tuple[frozenset[str], float], ...] = ()  # qualitative: positive keys
    preop: bool = False


_NEG = (("阴性", "N", 1.0),)


def _derive_cbc(v: dict[str, float]) -> None:
    # RBC, MCV and MCHC are drawn; the rest follows (HCT = RBC×MCV, HGB = RBC×MCH, MCHC = HGB/HCT).
    v["MCH"] = v["MCV"] * v["MCHC"] / 1000
    v["HCT"] = v["RBC"] * v["MCV"] / 10
    v["HGB"] = v["RBC"] * v["MCH"]
    others = v["LYMPH%"] + v["MONO%"] + v["EO%"] + v["BASO%"]
    if others > 92:
        scale = 92 / others
        for key in ("LYMPH%", "MONO%", "EO%", "BASO%"):
            v[key] *= scale
        others = 92
    v["NEUT%"] = 100 - others
    for cell in ("NEUT", "LYMPH", "MONO", "EO", "BASO"):
        v[f"{cell}#"] = v["WBC"] * v[f"{cell}%"] / 100


def _derive_liver(v: dict[str, float]) -> None:
    v["DBIL"] = min(v["DBIL"], v["TBIL"] * 0.6)
    v["IBIL"] = v["TBIL"] - v["DBIL"]
    v["TP"] = v["ALB"] + v["GLB"]
    v["A/G"] = v["ALB"] / v["GLB"]


def _derive_lytes(v: dict[str, float]) -> None:
    v["Cl"] = v["Na"] - v["AG"] - v["HCO3"]


def _derive_coag(v: dict[str, float]) -> None:
    v["INR"] = v["PT"] / 12.0


_CBC = Panel(
    "血常规", "HEM/BC", "血液学与细胞计数", "临检", "BLD", "HEM/BC",
    (
        Analyte("WBC", "250101015", "白细胞计数(WBC)", "白细胞", "10^9/L", 3.5, 9.5, 2, "电阻抗法", p_abnormal=0.04),
        Analyte("NEUT%", "250101015", "中性粒细胞百分比(NEUT%)", "中性粒细胞百分比", "%", 40, 75, 1, "流式细胞术"),
        Analyte("LYMPH%", "250101015", "淋巴细胞百分比(LYMPH%)", "淋巴细胞百分比", "%", 20, 50, 1, "流式细胞术"),
        Analyte("MONO%", "250101015", "单核细胞百分比(MONO%)", "单核细胞百分比", "%", 3, 10, 1, "流式细胞术"),
        Analyte("EO%", "250101015", "嗜酸性粒细胞百分比(EO%)", "嗜酸性粒细胞百分比", "%", 0.4, 8.0, 1, "流式细胞术"),
        Analyte("BASO%", "250101015", "嗜碱性粒细胞百分比(BASO%)", "嗜碱性粒细胞百分比", "%", 0, 1, 1, "流式细胞术"),
        Analyte("NEUT#", "250101015", "中性粒细胞绝对值(NEUT#)", "中性粒细胞数", "10^9/L", 1.8, 6.3, 2, "计算法"),
        Analyte("LYMPH#", "250101015", "淋巴细胞绝对值(LYMPH#)", "淋巴细胞数", "10^9/L", 1.1, 3.2, 2, "计算法"),
        Analyte("MONO#", "250101015", "单核细胞绝对值(MONO#)", "单核细胞数", "10^9/L", 0.1, 0.6, 2, "计算法"),
        Analyte("EO#", "250101015", "嗜酸性粒细胞绝对值(EO#)", "嗜酸性粒细胞数", "10^9/L", 0.02, 0.52, 2, "计算法"),
        Analyte("BASO#", "250101015", "嗜碱性粒细胞绝对值(BASO#)", "嗜碱性粒细胞数", "10^9/L", 0, 0.06, 2, "计算法"),
        Analyte("RBC", "250101015", "红细胞计数(RBC)", "红细胞", "10^12/L", 4.3, 5.8, 2, "电阻抗法", female=(3.8, 5.1), p_abnormal=0.04),
        Analyte("HGB", "250101015", "血红蛋白(HGB)", "血红蛋白", "g/L", 130, 175, 0, "SLS血红蛋白法", female=(115, 150)),
        Analyte("HCT", "250101015", "红细胞压积(HCT)", "红细胞压积", "%", 40, 50, 1, "计算法", female=(35, 45)),
        Analyte("MCV", "250101015", "平均红细胞体积(MCV)", "平均红细胞体积", "fL", 82, 100, 1, "电阻抗法", p_abnormal=0.04),
        Analyte("MCH", "250101015", "平均红细胞血红蛋白含量(MCH)", "平均血红蛋白量", "pg", 27, 34, 1, "计算法"),
        Analyte("MCHC", "250101015", "平均红细胞血红蛋白浓度(MCHC)", "平均血红蛋白浓度", "g/L", 316, 354, 0, "计算法", p_abnormal=0.04),
        Analyte("RDW-CV", "250101015", "红细胞分布宽度(RDW-CV)", "红细胞分布宽度", "%", 11.5, 14.5, 1, "计算法"),
        Analyte("PLT", "250101015", "血小板计数(PLT)", "血小板", "10^9/L", 125, 350, 0, "电阻抗法"),
    ),
    weight=30, derive=_derive_cbc,
)

_LIVER = Panel(
    "肝功能", "CHEM", "临床化学", "生化", "SER", "CHEM",
    (
        Analyte("ALT", "250305007", "丙氨酸氨基转移酶(ALT)", "丙氨酸氨基转移酶", "U/L", 9, 50, 0, "速率法", female=(7, 40)),
        Analyte("AST", "AST", "天门冬氨酸氨基转移酶(AST)", "天门冬氨酸氨基转移酶", "U/L", 15, 40, 0, "速率法", female=(13, 35)),
        Analyte("ALP", "ALP", "碱性磷酸酶(ALP)", "碱性磷酸酶", "U/L", 45, 125, 0, "速率法", female=(50, 135)),
        Analyte("GGT", "GGT", "γ-谷氨酰转移酶(GGT)", "γ-谷氨酰转移酶", "U/L", 10, 60, 0, "速率法", female=(7, 45)),
        Analyte("TP", "250301001", "总蛋白(TP)", "总蛋白(双缩脲法)", "g/L", 65, 85, 1, "双缩脲法"),
        Analyte("ALB", "250301002", "白蛋白(ALB)", "白蛋白(溴甲酚绿法)", "g/L", 40, 55, 1, "溴甲酚绿法", p_abnormal=0.04),
        Analyte("GLB", "GLB", "球蛋白(GLB)", "球蛋白", "g/L", 20, 40, 1, "计算法", p_abnormal=0.04),
        Analyte("A/G", "A/G", "白球比(A/G)", "白球比", "", 1.2, 2.4, 2, "计算法"),
        Analyte("TBIL", "250305001", "总胆红素(TBIL)", "总胆红素", "μmol/L", 0, 21.0, 1, "钒酸盐氧化法"),
        Analyte("DBIL", "250305002", "直接胆红素(DBIL)", "直接胆红素", "μmol/L", 0, 6.8, 1, "钒酸盐氧化法"),
        Analyte("IBIL", "250305003", "间接胆红素(IBIL)", "间接胆红素", "μmol/L", 0, 17.0, 1, "计算法"),
        Analyte("TBA", "250305005", "总胆汁酸(TBA)", "总胆汁酸", "μmol/L", 0, 10.0, 1, "酶循环法"),
        Analyte("LDH", "250306005", "乳酸脱氢酶(LDH)", "乳酸脱氢酶", "U/L", 120, 250, 0, "速率法"),
    ),
    weight=12, derive=_derive_liver,
)

_RENAL = Panel(
    "肾功能", "CHEM", "临床化学", "生化", "SER", "CHEM",
    (
        Analyte("UREA", "250307001", "尿素(Urea)", "尿素", "mmol/L", 3.1, 8.0, 2, "脲酶-谷氨酸脱氢酶法", female=(2.6, 7.5)),
        Analyte("CREA", "250307002", "肌酐(Cr)", "肌酐(酶法)", "μmol/L", 57, 111, 0, "酶法", female=(41, 81)),
        Analyte("UA", "250307005", "尿酸(UA)", "尿酸", "μmol/L", 208, 428, 0, "尿酸酶法", female=(155, 357)),
        Analyte("CysC", "250307028", "胱抑素C(CysC)", "胱抑素C", "mg/L", 0.59, 1.03, 2, "颗粒增强免疫比浊法"),
    ),
    weight=12,
)

_LIPID = Panel(
    "血脂", "CHEM", "临床化学", "生化", "SER", "CHEM",
    (
        Analyte("TC", "250303001", "总胆固醇(TC)", "总胆固醇", "mmol/L", None, 5.20, 2, "酶法"),
        Analyte("TG", "250303002", "甘油三酯(TG)", "甘油三酯", "mmol/L", None, 1.70, 2, "酶法", p_abnormal=0.15),
        Analyte("HDL", "250303004", "高密度脂蛋白胆固醇(HDL-C)", "高密度脂蛋白胆固醇", "mmol/L", 1.04, None, 2, "直接法"),
        Analyte("LDL", "250303005", "低密度脂蛋白胆固醇(LDL-C)", "低密度脂蛋白胆固醇", "mmol/L", None, 3.40, 2, "直接法", p_abnormal=0.12),
        Analyte("APOA1", "250303007", "载脂蛋白A1(ApoA1)", "载脂蛋白A1", "g/L", 1.00, 1.60, 2, "免疫比浊法"),
        Analyte("APOB", "250303009", "载脂蛋白B(ApoB)", "载脂蛋白B", "g/L", 0.60, 1.10, 2, "免疫比浊法"),
        Analyte("LPA", "250303013", "脂蛋白(a)[Lp(a)]", "脂蛋白(a)", "mg/L", None, 300, 0, "免疫比浊法"),
    ),
    weight=10,
)

_LYTES = Panel(
    "电解质", "CHEM", "临床化学", "生化", "SER", "CHEM",
    (
        Analyte("K", "250304001", "钾(K)", "钾", "mmol/L", 3.5, 5.3, 2, "离子选择电极法"),
        Analyte("Na", "250304002", "钠(Na)", "钠", "mmol/L", 137, 147, 1, "离子选择电极法", p_abnormal=0.03),
        Analyte("Cl", "250304003", "氯(Cl)", "氯", "mmol/L", 99, 110, 1, "离子选择电极法"),
        Analyte("Ca", "250304004", "钙(Ca)", "钙", "mmol/L", 2.11, 2.52, 2, "偶氮胂Ⅲ法"),
        Analyte("P", "250304005", "无机磷(P)", "无机磷", "mmol/L", 0.85, 1.51, 2, "磷钼酸盐法"),
        Analyte("HCO3", "250304010", "碳酸氢盐(HCO3-)", "碳酸氢盐", "mmol/L", 22, 29, 1, "酶法", p_abnormal=0.03),
        Analyte("AG", "AG", "阴离子间隙", "阴离子间隙", "mmol/L", 8, 16, 1, "计算法", p_abnormal=0.03),
    ),
    weight=8, min_level=2, derive=_derive_lytes,
)

_GLU = Panel(
    "血糖", "CHEM", "临床化学", "生化", "SER", "CHEM",
    (
        Analyte("GLU", "250302001", "葡萄糖(GLU)", "空腹血糖", "mmol/L", 3.9, 6.1, 2, "己糖激酶法", p_abnormal=0.15),
        Analyte("HbA1c", "HbA1c", "糖化血红蛋白(HbA1c)", "糖化血红蛋白", "%", 4.0, 6.0, 1, "高效液相色谱法", p_abnormal=0.12),
    ),
    weight=10,
)

_COAG = Panel(
    "凝血功能", "COAG", "凝血", "凝血", "PLAS", "COAG",
    (
        Analyte("PT", "250203020", "凝血酶原时间(PT)", "凝血酶原时间", "s", 10.0, 14.0, 1, "凝固法"),
        Analyte("INR", "250203020", "国际标准化比值(INR)", "国际标准化比值", "", 0.80, 1.20, 2, "计算法"),
        Analyte("APTT", "250203025", "活化部分凝血活酶时间(APTT)", "活化部分凝血活酶时间", "s", 25.0, 37.0, 1, "凝固法"),
        Analyte("FIB", "250203030", "纤维蛋白原(FIB)", "纤维蛋白原", "g/L", 2.00, 4.00, 2, "Clauss法"),
        Analyte("TT", "250203035", "凝血酶时间(TT)", "凝血酶时间", "s", 14.0, 21.0, 1, "凝固法"),
        Analyte("DD", "250203066", "D-二聚体(D-Dimer)", "D-二聚体", "mg/L FEU", None, 0.55, 2, "免疫比浊法", p_abnormal=0.12),
    ),
    weight=6, min_level=2, derive=_derive_coag,
)

_DIP = (("阴性", "N", 88.0), ("弱阳性(±)", "WP", 6.0), ("阳性(1+)", "P", 4.0), ("阳性(2+)", "P", 2.0))
_URINE = Panel(
    "尿常规", "UA", "尿液分析", "尿液", "UR", "UA",
    (
        Qual("COLOR", "250102035", "颜色(COLOR)", "颜色", (("淡黄色", "N", 80.0), ("黄色", "N", 20.0)), "目测法", ""),
        Qual("CLARITY", "250102035", "透明度(CLA)", "透明度", (("清亮", "N", 90.0), ("微浑", "N", 10.0)), "目测法", ""),
        Analyte("PH", "250102035", "酸碱度(pH)", "酸碱度", "", 4.5, 8.0, 1, "干化学法", step=0.5, p_abnormal=0.0),
        Analyte("SG", "250102035", "比重(SG)", "比重", "", 1.003, 1.030, 3, "干化学法", step=0.005, p_abnormal=0.02),
        Qual("PRO", "250102035", "尿蛋白(PRO)", "尿蛋白", _DIP, "干化学法"),
        Qual("UGLU", "250102035", "尿葡萄糖(GLU)", "尿糖", _DIP, "干化学法"),
        Qual("KET", "250102035", "酮体(KET)", "酮体", (("阴性", "N", 95.0), ("弱阳性(±)", "WP", 5.0)), "干化学法"),
        Qual("BIL", "250102035", "胆红素(BIL)", "胆红素", (("阴性", "N", 97.0), ("阳性(1+)", "P", 3.0)), "干化学法"),
        Qual("URO", "250102035", "尿胆原(URO)", "尿胆原", (("阴性", "N", 95.0), ("弱阳性(±)", "WP", 5.0)), "干化学法"),
        Qual("BLD", "250102035", "隐血(BLD)", "隐血", _DIP, "干化学法"),
        Qual("NIT", "250102035", "亚硝酸盐(NIT)", "亚硝酸盐", (("阴性", "N", 96.0), ("阳性", "P", 4.0)), "干化学法"),
        Qual("LEU", "250102035", "白细胞酯酶(LEU)", "白细胞酯酶", _DIP, "干化学法"),
        Analyte("URBC", "250102024", "红细胞(尿沉渣)", "尿沉渣红细胞", "/μL", 0, 25, 1, "流式细胞术"),
        Analyte("UWBC", "250102024", "白细胞(尿沉渣)", "尿沉渣白细胞", "/μL", 0, 25, 1, "流式细胞术"),
    ),
    weight=12,
)

_HBV = Panel(
    "乙肝五项", "SERO", "血清学", "免疫", "SER", "SERO",
    (
        Qual("HBsAg", "250403004", "乙型肝炎表面抗原(HBsAg)", "乙肝表面抗原", _NEG, "化学发光法"),
        Qual("HBsAb", "250403005", "乙型肝炎表面抗体(Anti-HBs)", "乙肝表面抗体", _NEG, "化学发光法"),
        Qual("HBeAg", "250403006", "乙型肝炎e抗原(HBeAg)", "乙肝e抗原", _NEG, "化学发光法"),
        Qual("HBeAb", "250403007", "乙型肝炎e抗体(Anti-HBe)", "乙肝e抗体", _NEG, "化学发光法"),
        Qual("HBcAb", "250403009", "乙型肝炎核心抗体(Anti-HBc)", "乙肝核心抗体", _NEG, "化学发光法"),
    ),
    weight=5, min_level=2,
    patterns=(
        (frozenset(), 40.0),
        (frozenset({"HBsAb"}), 35.0),
        (frozenset({"HBsAb", "HBcAb"}), 12.0),
        (frozenset({"HBcAb"}), 3.0),
        (frozenset({"HBsAg", "HBeAg", "HBcAb"}), 3.0),
        (frozenset({"HBsAg", "HBeAb", "HBcAb"}), 7.0),
    ),
)

_PREOP = Panel(
    "术前四项", "SERO", "血清学", "免疫", "SER", "SERO",
    (
        Qual("HBsAg", "250403004", "乙型肝炎表面抗原(HBsAg)", "乙肝表面抗原", (("阴性", "N", 95.0), ("阳性", "P", 5.0)), "化学发光法"),
        Qual("HCV", "250403014", "丙型肝炎抗体(Anti-HCV)", "丙肝抗体", (("阴性", "N", 99.0), ("阳性", "P", 1.0)), "化学发光法"),
        Qual("HIV", "250403019", "人免疫缺陷病毒抗体(Anti-HIV)", "HIV抗体", _NEG, "化学发光法"),
        Qual("TP", "250403053", "梅毒螺旋体特异抗体(TP-Ab)", "梅毒螺旋体抗体", (("阴性", "N", 99.0), ("阳性", "P", 1.0)), "化学发光法"),
    ),
    weight=4, min_level=2, preop=True,
)

PANELS = (_CBC, _LIVER, _RENAL, _LIPID, _LYTES, _GLU, _COAG, _URINE, _HBV, _PREOP)
