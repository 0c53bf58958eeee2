"""Rules that cannot be understood: unsupported languages, gibberish, emoji, off-topic sentences.

A rule-understanding head learns to flag these. Training negatives (German, French, syllable
gibberish, off-topic English and Chinese) and test negatives (Spanish, Russian, Japanese, emoji,
random scripts, keyboard-mash gibberish, other off-topic sentences) share no family and no
sentence, so a flag rate measured on test negatives is not a memorised list. The oracle treats a
negative as absent; its class is ``not_understood``.

Japanese strings all contain kana: an all-kanji string such as 歩行者優先 reads as Chinese with a
traffic meaning, which would contradict its label.
"""

from __future__ import annotations

import random

from core.errors import DataError

__all__ = ["NEGATIVE_FAMILIES", "POOLS", "sample_negative"]

_FIXED: dict[str, tuple[str, tuple[str, ...]]] = {
    # family id: (language code, sentences)
    "neg.train.de": (
        "de",
        (
            "Überholen verboten",
            "Höchstgeschwindigkeit 50 km/h",
            "Rechts abbiegen bei Rot erlaubt",
            "Fußgängern Vorrang gewähren",
            "Bei Gelb immer anhalten",
            "Linker Fahrstreifen gesperrt, rechts einordnen",
            "Busspur werktags 7 bis 17 Uhr",
            "Überholverbot für Lkw über 7,5 t",
        ),
    ),
    "neg.train.fr": (
        "fr",
        (
            "Dépassement interdit",
            "Vitesse limitée à 50 km/h",
            "Cédez le passage aux piétons",
            # Not "feu orange": "orange" is a held-out English family (amber.orange), and a
            # training text that uses it only here teaches "orange" = not understood.
            "Arrêt obligatoire au feu rouge",
            "Voie de gauche fermée, rabattez-vous à droite",
            "Tourner à droite au feu rouge autorisé",
            "Couloir de bus de 7h à 17h",
            "Stationnement interdit",
        ),
    ),
    # Off-topic training sentences are statements, never orders (found in the thirty-fourth
    # session, adopted in the forty-first against control runs retrained the same day): an
    # order about something else ("Please remember to water the plants") taught its form to mean
    # "not understood", and retrained models flagged readable held-out in-car advice in the same
    # form ("Remember to fold in the mirrors", "Demist the windscreen before you set off").
    "neg.train.ood_en": (
        "en",
        (
            "The plants in the hall are doing well",
            "The meeting starts at ten",
            "My cat likes to sleep on the sofa",
            "The office is quiet on Fridays",
            "This medicine tastes of cherries",
            "Lunch is served from 12 to 2",
        ),
    ),
    "neg.train.ood_zh": (
        "zh",
        (
            "今天天气很好",
            "花园里的花开了",
            "会议十点开始",
            "我的猫喜欢在沙发上睡觉",
            "图书馆工作日晚上八点关门",
            "午饭时间是十二点到两点",
        ),
    ),
    "neg.test.es": (
        "es",
        (
            "Prohibido adelantar",
            "Velocidad máxima 50 km/h",
            "Ceda el paso a los peatones",
            "Deténgase con la luz ámbar",
            "Carril izquierdo cerrado, incorpórese a la derecha",
            "Giro a la derecha en rojo permitido",
            "Carril bus de 7 a 17 h",
        ),
    ),
    "neg.test.ru": (
        "ru",
        (
            "Обгон запрещён",
            "Ограничение скорости 50 км/ч",
            "Уступите дорогу пешеходам",
            "Остановитесь на жёлтый сигнал",
            "Левая полоса закрыта, перестройтесь вправо",
            "Поворот направо на красный разрешён",
        ),
    ),
    "neg.test.ja": (
        "ja",
        (
            "追い越し禁止です",
            "最高速度50キロ",
            "歩行者を優先してください",
            "黄色信号では止まれ",
            "左車線は閉鎖中、右へ合流してください",
            "赤信号での右折は可能です",
        ),
    ),
    "neg.test.ood_en": (
        "en",
        (
            "The train to Leeds departs from platform 4",
            "Add two cups of flour and stir",
            "Remember to back up your files every Friday",
            "The museum is free on Sundays",
            "Wash your hands before dinner",
        ),
    ),
    "neg.test.ood_zh": (
        "zh",
        (
            "明天下午三点开会",
            "请把书放回书架",
            "这家餐厅的面条很好吃",
            "火车从四号站台出发",
            "周末一起去爬山吧",
        ),
    ),
}

# fmt: off
_SYLLABLES = ["bla", "kor", "ven", "tiz", "mup", "dra", "sel", "fon", "gri", "wab", "zut", "pel",
              "nox", "quen", "rif", "das"]
_EMOJI = ["🚗", "🚙", "🚌", "🚚", "🚲", "🏍️", "💨", "🚫", "⛔", "🚦", "🟡", "🔴", "✋", "🚸", "👣",
          "➡️", "⬅️", "↩️", "🛑", "⏰", "🅿️", "🚧"]
# fmt: on
# Unicode blocks for random-script strings: Greek, Arabic, Devanagari, Thai, Hangul syllables.
_BLOCKS = ((0x3B1, 0x3C9), (0x628, 0x64A), (0x915, 0x939), (0xE01, 0xE2E), (0xAC00, 0xAC00 + 400))


def _syllable_gibberish(rng: random.Random) -> str:
    words = [
        "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3)))
        for _ in range(rng.randint(2, 5))
    ]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words) + 1), str(rng.choice((20, 30, 50, 80))))
    return " ".join(words).capitalize()


def _keyboard_mash(rng: random.Random) -> str:
    letters = "qwertzuiopasdfghjklyxcvbnm"
    words = [
        "".join(rng.choice(letters) for _ in range(rng.randint(2, 7)))
        for _ in range(rng.randint(2, 5))
    ]
    if rng.random() < 0.4:
        words.append(str(rng.randint(1, 199)))
    return " ".join(words)


def _emoji(rng: random.Random) -> str:
    out = "".join(rng.choice(_EMOJI) for _ in range(rng.randint(2, 5)))
    return out + (f" {rng.choice((30, 50, 70))}" if rng.random() < 0.3 else "")


def _script(rng: random.Random) -> str:
    lo, hi = rng.choice(_BLOCKS)
    return " ".join(
        "".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(3, 8)))
        for _ in range(rng.randint(1, 4))
    )


_GENERATED = {
    "neg.train.gibberish": ("und", _syllable_gibberish),
    "neg.test.gibberish": ("und", _keyboard_mash),
    "neg.test.emoji": ("und", _emoji),
    "neg.test.script": ("und", _script),
}

NEGATIVE_FAMILIES = tuple(_FIXED) + tuple(_GENERATED)
POOLS = {
    pool: tuple(f for f in NEGATIVE_FAMILIES if f.startswith(f"neg.{pool}."))
    for pool in ("train", "test")
}


def sample_negative(rng: random.Random, pool: str) -> tuple[str, str, str]:
    """(text, language code, family id) of one rule nobody can read, from pool "train"/"test"."""
    if pool not in POOLS:
        raise DataError(f"negative pool {pool!r} is not one of {sorted(POOLS)}")
    family = rng.choice(POOLS[pool])
    if family in _GENERATED:
        lang, make = _GENERATED[family]
        return make(rng), lang, family
    lang, texts = _FIXED[family]
    return rng.choice(texts), lang, family
