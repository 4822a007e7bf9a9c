#!/usr/bin/env python
"""Writes fieldtune's Chinese samples, our own text (CC0), composed from the phrase lists below:
``zh_ner`` (one word per line as fieldtune splits raw text — each CJK character, a Latin run, an emoji —
BIO tags PER / LOC / ORG) and ``zh_sentiment`` (hotel reviews, ``text,label`` CSV, 正面 / 负面).
Deterministic (seed 7): ``.venv/bin/python scripts/make_zh_samples.py`` rewrites the same files."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from fieldtune.tasks.token_classification import words_with_offsets

OUT = Path(__file__).resolve().parent.parent / "src" / "fieldtune" / "samples"
NAMES = {
    "PER": "张伟 李娜 王芳 刘洋 陈明 赵磊 孙丽 周强 吴静 郑浩 黄敏 林涛 何雪 马超 高峰 罗兰".split(),
    "LOC": "北京 上海 深圳 杭州 成都 南京 西安 武汉 广州 苏州 重庆 青岛 厦门 长沙".split(),
    "ORG": (
        "华为公司 招商银行 清华大学 腾讯 阿里巴巴 中国银行 北京大学 小米公司 人民医院 平安保险 复旦大学 京东"
    ).split(),
}
TEMPLATES = [
    "{PER}在{LOC}的{ORG}工作。",
    "{PER}上个月离开了{ORG}。",
    "{ORG}在{LOC}开设了新的办公室。",
    "{PER}和{PER2}周末去{LOC}旅游。",
    "{PER}毕业于{ORG}，现在住在{LOC}。",
    "今天{ORG}的股价上涨了。",
    "{PER}说{LOC}的天气越来越热了。",
    "我们下周要去{LOC}见{PER}。",
    "{ORG}宣布{PER}担任新的总经理。",
    "{PER}昨天从{LOC}飞到了{LOC2}。",
    "听说{ORG}和{ORG2}要合作了。",
    "{PER}给{ORG}写了一封投诉信。",
    "在{LOC}，{PER}开了一家小餐馆。",
    "{ORG}的客服电话一直打不通。",
    "明天{PER}要去{ORG}面试。",
    "{PER}用iPhone拍了很多{LOC}的照片😀",
    "{LOC}到{LOC2}的高铁只要两个小时。",
    "这本书是{PER}推荐给我的。",
]
GOOD = (
    "房间很干净 服务非常热情 早餐种类很丰富 位置很方便，离地铁站很近 价格很实惠 前台办理入住很快 床很舒服，睡得很好 "
    "卫生间很新 WiFi速度很快 隔音效果不错 窗外的风景很美 空调很安静 停车很方便 工作人员很专业"
).split()
BAD = (
    "房间有点脏 服务态度很差 早餐很难吃 位置太偏了，打车都难 价格太贵了 前台办理入住等了一个小时 床很硬，一晚上没睡好 "
    "卫生间有异味 WiFi经常断线 隔音很差，整晚都很吵 窗户关不严 空调坏了也没人修 停车位太少 热水时有时无"
).split()
GOOD_END = ["下次还会再来。", "推荐大家入住！", "总体很满意。", "性价比很高。", "这次出差住得很愉快。", ""]
BAD_END = ["不会再住了。", "非常失望。", "不推荐。", "体验很糟糕。", "和图片完全不一样。", ""]


def fill(template: str, rng: random.Random) -> tuple[str, list[tuple[int, int, str]]]:
    """A template with its slots filled -> (sentence, entity spans)."""
    pick = {kind: rng.sample(names, 2) for kind, names in NAMES.items()}
    text, spans, i = "", [], 0
    while i < len(template):
        if template[i] != "{":
            text, i = text + template[i], i + 1
            continue
        j = template.index("}", i)
        key = template[i + 1 : j]
        word = pick[key.rstrip("2")][1 if key.endswith("2") else 0]
        spans.append((len(text), len(text) + len(word), key.rstrip("2")))
        text, i = text + word, j + 1
    return text, spans


def conll(text: str, spans: list[tuple[int, int, str]]) -> str:
    lines = []
    for word, start, end in words_with_offsets(text):
        kind = next((k for s, e, k in spans if s <= start and end <= e), None)
        first = any(s == start for s, _, _ in spans)
        lines.append(f"{word}\t{'O' if not kind else ('B-' if first else 'I-') + kind}")
    return "\n".join(lines)


def ner(rng: random.Random) -> dict[str, int]:
    sentences = [fill(t, rng) for _ in range(4) for t in TEMPLATES]
    rng.shuffle(sentences)
    unique = list({text: (text, spans) for text, spans in sentences}.values())
    parts = {"train": unique[:48], "dev": unique[48:60], "test": unique[60:72]}
    (OUT / "zh_ner").mkdir(parents=True, exist_ok=True)
    for name, rows in parts.items():
        (OUT / "zh_ner" / f"{name}.txt").write_text("\n\n".join(conll(*r) for r in rows) + "\n", encoding="utf-8")
    return {name: len(rows) for name, rows in parts.items()}


def sentiment(rng: random.Random) -> dict[str, int]:
    reviews: set[tuple[str, str]] = set()
    while len(reviews) < 96:
        good = len(reviews) % 2 == 0
        first, second = rng.sample(GOOD if good else BAD, 2)
        reviews.add((f"{first}，{second}。{rng.choice(GOOD_END if good else BAD_END)}", "正面" if good else "负面"))
    pool = sorted(reviews)
    rng.shuffle(pool)
    split = {}
    for name in ("test", "dev"):  # 8 of each label, the rest trains
        rows = [r for r in pool if r[1] == "正面"][:8] + [r for r in pool if r[1] == "负面"][:8]
        pool = [r for r in pool if r not in rows]
        rng.shuffle(rows)
        split[name] = rows
    split["train"] = pool
    (OUT / "zh_sentiment").mkdir(parents=True, exist_ok=True)
    for name, rows in split.items():
        with open(OUT / "zh_sentiment" / f"{name}.csv", "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([("text", "label"), *rows])
    return {name: len(rows) for name, rows in split.items()}


if __name__ == "__main__":
    rng = random.Random(7)
    print("zh_ner", ner(rng), "zh_sentiment", sentiment(rng))
