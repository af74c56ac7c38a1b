"""Writing systems: romanised units, transliteration into six scripts, and script-specific digits.

Every word of every synthetic language is built in a romanised form (units ``a e i o u p b ... ch sh th kh
gh ng zh ph``); :func:`transliterate` writes it deterministically in Latin (with an optional orthography),
Cyrillic, Greek, Devanagari, Tamil or Arabic. :func:`_digits` writes numbers in the script's digits, and
:data:`_PUNCT` / :data:`_CASED` say which punctuation a script replaces and whether it has capitals.
"""

from __future__ import annotations

_DIGRAPHS = frozenset({"zh", "ch", "sh", "th", "kh", "gh", "ng", "ph"})
_VOWELS = frozenset("aeiou")
_CASED = frozenset({"Latin", "Cyrillic", "Greek"})


def _segment(word: str) -> list[str]:
    """Split a romanised word into units (greedy digraphs)."""
    units = []
    i = 0
    while i < len(word):
        if word[i:i + 2] in _DIGRAPHS:
            units.append(word[i:i + 2])
            i += 2
        else:
            units.append(word[i])
            i += 1
    return units


_CYRILLIC = {
    "a": "а", "e": "е", "i": "и", "o": "о", "u": "у", "p": "п", "b": "б", "t": "т", "d": "д", "k": "к",
    "g": "г", "m": "м", "n": "н", "s": "с", "z": "з", "f": "ф", "v": "в", "h": "х", "l": "л", "r": "р",
    "w": "в", "y": "й", "j": "дж", "ch": "ч", "sh": "ш", "th": "т", "kh": "х", "gh": "г", "ng": "нг",
    "zh": "ж", "ph": "ф",
}
_CYRILLIC_Y = {"a": "я", "u": "ю", "o": "ё"}
_GREEK = {
    "a": "α", "e": "ε", "i": "ι", "o": "ο", "u": "ου", "p": "π", "b": "μπ", "t": "τ", "d": "ντ", "k": "κ",
    "g": "γκ", "m": "μ", "n": "ν", "s": "σ", "z": "ζ", "f": "φ", "v": "β", "h": "χ", "l": "λ", "r": "ρ",
    "w": "ου", "y": "γι", "j": "τζ", "ch": "τσ", "sh": "σ", "th": "θ", "kh": "χ", "gh": "γ", "ng": "γγ",
    "zh": "ζ", "ph": "φ",
}
_DEVANAGARI_C = {
    "p": "प", "b": "ब", "t": "त", "d": "द", "k": "क", "g": "ग", "m": "म", "n": "न", "s": "स",
    "z": "ज\u093c", "f": "फ\u093c", "v": "व", "h": "ह", "l": "ल", "r": "र", "w": "व", "y": "य", "j": "ज",
    "ch": "च", "sh": "श", "th": "थ", "kh": "ख", "gh": "घ", "ng": "ङ", "zh": "झ", "ph": "फ",
}
_DEVANAGARI_V = {"a": "अ", "e": "ए", "i": "इ", "o": "ओ", "u": "उ"}
_DEVANAGARI_M = {"a": "", "e": "\u0947", "i": "\u093f", "o": "\u094b", "u": "\u0941"}
_TAMIL_C = {
    "p": "ப", "b": "ப", "t": "த", "d": "ட", "k": "க", "g": "க", "m": "ம", "n": "ந", "s": "ச", "z": "ஜ",
    "f": "ஃப", "v": "வ", "h": "ஹ", "l": "ல", "r": "ர", "w": "வ", "y": "ய", "j": "ஜ", "ch": "ச", "sh": "ஷ",
    "th": "த", "kh": "க", "gh": "க", "ng": "ங", "zh": "ழ", "ph": "ப",
}
_TAMIL_V = {"a": "அ", "e": "எ", "i": "இ", "o": "ஒ", "u": "உ"}
_TAMIL_M = {"a": "", "e": "\u0bc6", "i": "\u0bbf", "o": "\u0bca", "u": "\u0bc1"}
_ARABIC_C = {
    "p": "ب", "b": "ب", "t": "ت", "d": "د", "k": "ك", "g": "غ", "m": "م", "n": "ن", "s": "س", "z": "ز",
    "f": "ف", "v": "ف", "h": "ه", "l": "ل", "r": "ر", "w": "و", "y": "ي", "j": "ج", "ch": "تش", "sh": "ش",
    "th": "ث", "kh": "خ", "gh": "غ", "ng": "نغ", "zh": "ج", "ph": "ف",
}
_ARABIC_V_INITIAL = {"a": "أ", "e": "إ", "i": "إي", "o": "أو", "u": "أو"}
_ARABIC_V = {"a": "ا", "e": "ي", "i": "ي", "o": "و", "u": "و"}
_DIGITS = {"Devanagari": "०१२३४५६७८९", "Arabic": "٠١٢٣٤٥٦٧٨٩"}
_PUNCT = {"Devanagari": {".": "।"}, "Arabic": {"?": "؟", ",": "،"}}


def _abugida(units: list[str], consonants: dict, vowels: dict, signs: dict, killer: str,
             final_killer: bool) -> str:
    out = []
    i = 0
    while i < len(units):
        unit = units[i]
        if unit in consonants:
            out.append(consonants[unit])
            nxt = units[i + 1] if i + 1 < len(units) else None
            if nxt in _VOWELS:
                out.append(signs[nxt])
                i += 1
            elif nxt is not None or final_killer:
                out.append(killer)
        else:
            out.append(vowels.get(unit, unit))
        i += 1
    return "".join(out)


def transliterate(word: str, script: str, orthography: dict[str, str] | None = None) -> str:
    """Write a romanised word (units ``a e i o u p b ... ch sh th kh gh ng zh ph``) in ``script``.

    Deterministic and context-sensitive where the script is (Devanagari/Tamil vowel signs and virama or
    pulli, Arabic initial vowels, Cyrillic ``ya``/``yu``/``yo``, Greek final sigma). Characters that are not
    romanised units (digits, apostrophes) pass through unchanged.
    """
    units = _segment(word)
    if script == "Latin":
        if not orthography:
            return word
        return "".join(orthography.get(u, u) for u in units)
    if script == "Cyrillic":
        out = []
        i = 0
        while i < len(units):
            if units[i] == "y" and i + 1 < len(units) and units[i + 1] in _CYRILLIC_Y:
                out.append(_CYRILLIC_Y[units[i + 1]])
                i += 2
                continue
            out.append(_CYRILLIC.get(units[i], units[i]))
            i += 1
        return "".join(out)
    if script == "Greek":
        text = "".join(_GREEK.get(u, u) for u in units)
        return text[:-1] + "ς" if text.endswith("σ") else text
    if script == "Devanagari":
        return _abugida(units, _DEVANAGARI_C, _DEVANAGARI_V, _DEVANAGARI_M, "\u094d", final_killer=False)
    if script == "Tamil":
        return _abugida(units, _TAMIL_C, _TAMIL_V, _TAMIL_M, "\u0bcd", final_killer=True)
    if script == "Arabic":
        out = []
        for i, unit in enumerate(units):
            if unit in _VOWELS:
                out.append((_ARABIC_V_INITIAL if i == 0 else _ARABIC_V)[unit])
            else:
                out.append(_ARABIC_C.get(unit, unit))
        return "".join(out)
    raise ValueError(f"unknown script {script!r}")


def _digits(number: int, script: str) -> str:
    text = str(number)
    table = _DIGITS.get(script)
    return "".join(table[int(c)] for c in text) if table else text
