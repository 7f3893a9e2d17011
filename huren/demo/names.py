"""Names of people in the demo region (Han, Hui, Uyghur and Kazakh), for patients and staff alike."""

from __future__ import annotations

import random

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚"
)
_HUI_SURNAMES = "马杨白丁韩金沙"
_GIVEN_MALE = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙林阳建志国文博新海峰"
_GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀玲桂英萍红梅琳雪婷倩颖慧莉燕洁欣怡佳琪月晶蕾薇丹璐瑶兰"
_UY_MALE = (
    "艾力", "买买提", "阿不都", "艾尔肯", "吐尔洪", "亚森", "热合曼", "努尔", "伊力哈木", "阿迪力",
    "麦麦提", "吾斯曼", "肉孜", "库尔班", "艾合买提", "帕尔哈提", "迪里夏提", "玉素甫", "依明", "艾克拜尔",
)
_UY_FEMALE = (
    "阿依古丽", "古丽米拉", "迪丽娜尔", "热依拉", "帕提古丽", "努尔古丽", "古再丽努尔", "米热古丽",
    "再努尔", "阿依努尔", "祖丽菲亚", "热孜宛古丽", "海丽其汗", "布维", "阿依夏姆", "加米拉",
)
_UY_FATHER = (
    "买买提", "吐尔逊", "艾买提", "阿不都拉", "司马义", "肉孜", "卡德尔", "吾甫尔", "依明",
    "托合提", "玉素甫", "艾山", "吾买尔", "尼亚孜", "阿不力米提", "克里木",
)
_KZ_MALE = ("叶尔兰", "努尔兰", "阿斯哈尔", "别克", "哈力木拉提", "叶尔江", "达吾列提")
_KZ_FEMALE = ("古丽娜尔", "阿依达娜", "玛丽亚", "阿依达尔", "娜孜古丽", "哈丽黛")
_KZ_FATHER = ("阿合买提", "努尔旦", "吐尔逊拜", "哈斯木", "别克", "加尔肯")


def _han_name(rng: random.Random, male: bool, surnames: str = _SURNAMES) -> str:
    pool = _GIVEN_MALE if male else _GIVEN_FEMALE
    given = rng.choice(pool) if rng.random() < 0.3 else rng.choice(pool) + rng.choice(pool)
    return rng.choice(surnames) + given


def person_name(rng: random.Random, male: bool) -> tuple[str, str]:
    """(name, ethnicity) with ethnicity in han/hui/uyghur/kazakh."""
    r = rng.random()
    if r < 0.62:
        return _han_name(rng, male), "han"
    if r < 0.70:
        return _han_name(rng, male, _HUI_SURNAMES), "hui"
    if r < 0.94:
        given = rng.choice(_UY_MALE if male else _UY_FEMALE)
        return f"{given}·{rng.choice(_UY_FATHER)}", "uyghur"
    given = rng.choice(_KZ_MALE if male else _KZ_FEMALE)
    return f"{given}·{rng.choice(_KZ_FATHER)}", "kazakh"
