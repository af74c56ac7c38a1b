"""Grammar and realisation: how one language turns a meaning into annotated tokens and text.

:class:`_Grammar` realises a :class:`~xlt.synthetic.meanings.Sentence` in one language: word forms
(suffix chains with vowel harmony, or particles and articles), noun phrases, dates, clauses in the
language's word order (:data:`_ORDERS`; wh-fronting outside SOV), coordination and punctuation. The result
is a :class:`Realisation`: forms with gold lemmas, UPOS, features, dependency heads and relations, IOB2
entity tags, the detokenised text and character offsets (for QA answer spans).
"""

from __future__ import annotations

from dataclasses import dataclass

from xlt.synthetic.lexicon import _Lexicon
from xlt.synthetic.meanings import NP, Clause, Date, Sentence
from xlt.synthetic.scripts import _CASED, _PUNCT, _VOWELS, _digits, transliterate
from xlt.synthetic.specs import LanguageSpec


class _Tok:
    __slots__ = ("form", "lemma", "upos", "feats", "deprel", "head", "ner", "role", "sub", "idx")

    def __init__(self, form: str, lemma: str, upos: str, deprel: str, head: _Tok | None = None,
                 ner: str = "O", role: str = "", sub: str = "", feats: str = "_") -> None:
        self.form = form
        self.lemma = lemma
        self.upos = upos
        self.deprel = deprel
        self.head = head
        self.ner = ner
        self.role = role
        self.sub = sub
        self.feats = feats


@dataclass
class Realisation:
    """A realised sentence: tokens with gold annotations and the detokenised text.

    ``heads`` are 1-based (0 = root); ``offsets[i]`` is the character span of token i in ``text``.
    """

    forms: list[str]
    lemmas: list[str]
    upos: list[str]
    feats: list[str]
    heads: list[int]
    deprels: list[str]
    ner: list[str]
    space_after: list[bool]
    text: str
    offsets: list[tuple[int, int]]
    roles: list[tuple[str, str]]

    def span(self, role: str, subs: tuple[str, ...] = ("core", "count")) -> tuple[int, int]:
        """Character span of the tokens of a constituent (``agent``, ``patient``, ``location``, ``time``)."""
        idx = [i for i, (r, s) in enumerate(self.roles) if r == role and s in subs]
        if not idx:
            raise KeyError(role)
        return self.offsets[idx[0]][0], self.offsets[idx[-1]][1]


_PUNCT_UPOS = "PUNCT"


_PRONOUNS = ("he", "she", "they")
_ENTITY_LABELS = {"per": ("PER", "first"), "org": ("ORG", "org"), "loc": ("LOC", "city")}
_CASE_FEATS = {"nom": "Case=Nom|", "acc": "Case=Acc|", "dat": "Case=Dat|", "loc": "Case=Loc|"}
_TENSE_FEATS = {"past": "Tense=Past", "present": "Tense=Pres", "future": "Tense=Fut"}


class _Grammar:
    """Realises meanings in one language."""

    def __init__(self, spec: LanguageSpec, lexicon: _Lexicon, names: dict[str, list[str]]) -> None:
        self.spec = spec
        self.lex = lexicon
        self.names = names
        self.analytic = spec.morphology == "analytic"
        self.cased = spec.script in _CASED
        self.ortho = dict(spec.orthography) or None
        self.punct = _PUNCT.get(spec.script, {})
        self._cache: dict[str, str] = {}
        self._fw: dict[str, list[str]] = {}
        self._forms: dict[tuple, str] = {}
        self._names: dict[str, str] = {}
        self.head_final = spec.head_final
        self.adj_before = spec.adjective_order == "before"
        self.order = _ORDERS[spec.word_order]
        self.wh_front = spec.word_order != "SOV"
        self.fw1 = {name: " ".join(self.fw(name)) for name in lexicon.fw}

    # ---- word forms -------------------------------------------------------------------------------
    def write(self, roman: str) -> str:
        """Transliterate a romanised word into this language's script (cached)."""
        out = self._cache.get(roman)
        if out is None:
            out = transliterate(roman, self.spec.script, self.ortho)
            self._cache[roman] = out
        return out

    def name(self, roman: str) -> str:
        """A proper-name token: transliterated, capitalised in cased scripts."""
        out = self._names.get(roman)
        if out is None:
            form = self.write(roman)
            out = self._names[roman] = form[:1].upper() + form[1:] if self.cased else form
        return out

    def number(self, n: int) -> str:
        return _digits(n, self.spec.script)

    def _suffix(self, stem: str, name: str) -> str:
        suffix = self.lex.suffixes.get(name, "")
        if not suffix:
            return stem
        if self.spec.harmony:
            vowels = [c for c in stem if c in _VOWELS]
            front = bool(vowels) and vowels[-1] in "ei"
            suffix = suffix.replace("A", "e" if front else "a").replace("I", "i" if front else "u")
        if stem and stem[-1] in _VOWELS and suffix[0] in _VOWELS:
            stem += "y" if self.spec.harmony else "n"
        return stem + suffix

    def particle(self, case: str) -> str:
        return self.write(self.lex.suffixes[case].replace("A", "a").replace("I", "u"))

    def noun(self, key: tuple, plural: bool, case: str) -> str:
        ck = (key, plural, case)
        out = self._forms.get(ck)
        if out is None:
            out = self._forms[ck] = self._noun(key, plural, case)
        return out

    def _noun(self, key: tuple, plural: bool, case: str) -> str:
        roman = self.lex.forms[key]
        if plural:
            roman = self._suffix(roman, "pl")
        if not self.analytic and case != "nom":
            roman = self._suffix(roman, case)
        return self.write(roman)

    def verb(self, key: tuple, tense: str, negated: bool, plural_agent: bool) -> str:
        ck = (key, tense, negated, plural_agent)
        out = self._forms.get(ck)
        if out is None:
            out = self._forms[ck] = self._verb(key, tense, negated, plural_agent)
        return out

    def lemma(self, key: tuple) -> str:
        """The citation form of a content lexeme."""
        out = self._forms.get(key)
        if out is None:
            out = self._forms[key] = self.write(self.lex.forms[key])
        return out

    def _verb(self, key: tuple, tense: str, negated: bool, plural_agent: bool) -> str:
        roman = self.lex.forms[key]
        if not self.analytic:
            if negated:
                neg = self.lex.suffixes["neg"]
                roman = neg + roman if self.spec.neg_prefix else self._suffix(roman, "neg")
            if tense != "present":
                roman = self._suffix(roman, "past" if tense == "past" else "fut")
            if plural_agent:
                roman = self._suffix(roman, "agr")
        return self.write(roman)

    def fw(self, name: str) -> list[str]:
        out = self._fw.get(name)
        if out is None:
            out = self._fw[name] = [self.write(part) for part in self.lex.fw[name].split()]
        return out

    # ---- phrases ----------------------------------------------------------------------------------
    def np(self, np: NP, case: str, role: str, wh: str | None = None) -> tuple[list[_Tok], _Tok]:
        """Tokens of a noun phrase in ``case`` (nom/acc/dat/loc) with its case marker, and its head."""
        analytic = self.analytic
        kind = np.kind
        entity_like = False
        if wh == "who" or wh == "what" or kind == "pron":
            name = wh if wh == "who" or wh == "what" else _PRONOUNS[np.lex]
            lemma = self.fw1[name]
            form = lemma if analytic or case == "nom" else self.write(self._suffix(self.lex.fw[name], case))
            head = _Tok(form, lemma, "PRON", "", None, "O", role, "core")
            toks = [head]
        elif kind == "noun":
            key = ("n", np.cls, np.lex)
            count = np.count
            plural = np.plural or count is not None or wh == "howmany"
            feats = "Number=Plur" if plural else "Number=Sing"
            if not analytic:
                feats = _CASE_FEATS[case] + feats
            form = self.noun(key, plural, case)
            head = _Tok(form, self.lemma(key), "NOUN", "", None, "O", role, "core", feats)
            if np.adjs:
                adjs = [_Tok(f, f, "ADJ", "amod", head, "O", role, "core") for f in map(self.lemma, np.adjs)]
                toks = adjs + [head] if self.adj_before else [head] + adjs
            else:
                toks = [head]
            if wh == "howmany":
                words = self.fw("howmany")
                if len(words) == 2:
                    many = _Tok(words[1], words[1], "ADJ", "amod", head, "O", role, "core")
                    toks = [_Tok(words[0], words[0], "ADV", "advmod", many, "O", role, "core"), many] + toks
                else:
                    toks = [_Tok(words[0], words[0], "DET", "det", head, "O", role, "core")] + toks
            elif count is not None:
                n = self.number(count)
                toks = [_Tok(n, n, "NUM", "nummod", head, "O", role, "count")] + toks
            if analytic and wh is None and (np.definite or not plural) and count is None:
                art = self.fw1["def" if np.definite else "indef"]
                toks = [_Tok(art, art, "DET", "det", head, "O", role, "core")] + toks
        else:
            label, pool = _ENTITY_LABELS[kind]
            first = self.name(self.names[pool][np.lex])
            head = _Tok(first, first, "PROPN", "", None, "B-" + label, role, "core")
            toks = [head]
            if kind == "per" and np.last >= 0:
                last = self.name(self.names["last"][np.last])
                toks.append(_Tok(last, last, "PROPN", "flat", head, "I-" + label, role, "core"))
            entity_like = True
        if case != "nom":
            if analytic:
                if case != "acc":
                    marker = self.fw1[case]
                    tok = _Tok(marker, marker, "ADP", "case", head, "O", role, "case")
                    toks = toks + [tok] if self.head_final else [tok] + toks
            elif entity_like:
                marker = self.particle(case)
                tok = _Tok(marker, marker, "ADP", "case", head, "O", role, "case")
                toks = toks + [tok] if self.head_final else [tok] + toks
        return toks, head

    def date(self, date: Date, role: str = "time") -> tuple[list[_Tok], _Tok]:
        year = self.number(date.year)
        if date.month is None:
            head = _Tok(year, year, "NUM", "", None, "B-DATE", role, "core")
            toks = [head]
        else:
            month = self.lemma(("month", "", date.month))
            month = month[:1].upper() + month[1:] if self.cased else month
            head = _Tok(month, month, "PROPN", "", None, "I-DATE", role, "core")
            toks = [head, _Tok(year, year, "NUM", "nummod", head, "I-DATE", role, "core")]
            if date.day is not None:
                day = self.number(date.day)
                toks.insert(0, _Tok(day, day, "NUM", "nummod", head, "B-DATE", role, "core"))
            else:
                head.ner = "B-DATE"
        marker = self.fw1["time"]
        tok = _Tok(marker, marker, "ADP", "case", head, "O", role, "case")
        return (toks + [tok] if self.head_final else [tok] + toks), head

    def clause(self, cl: Clause, wh: tuple[str, str] | None = None,
               front: str | None = None) -> tuple[list[_Tok], _Tok]:
        """Tokens of a clause in this language's order; the verb is the returned head."""
        wh_role, wh_kind = wh if wh else (None, None)
        vkey = ("v", *cl.verb)
        agent = cl.agent
        tense, negated = cl.tense, cl.negated
        vfeats = _TENSE_FEATS[tense]
        if negated and not self.analytic:
            vfeats = "Polarity=Neg|" + vfeats
        form = self.verb(vkey, tense, negated, agent.plural or agent.count is not None)
        verb = _Tok(form, self.lemma(vkey), "VERB", "root", None, "O", "verb", "core", vfeats)
        vc = [verb]
        if self.analytic:
            if negated:
                neg = self.fw1["neg"]
                vc.insert(0, _Tok(neg, neg, "PART", "advmod", verb, "O", "verb", "neg"))
            if tense != "present":
                aux = self.fw1["past" if tense == "past" else "fut"]
                tok = _Tok(aux, aux, "AUX", "aux", verb, "O", "verb", "aux")
                vc = vc + [tok] if self.head_final else [tok] + vc
        parts: dict[str, list[_Tok]] = {"V": vc}
        args = (("agent", agent, "nom", "nsubj"), ("patient", cl.patient, "acc", "obj"),
                ("recipient", cl.recipient, "dat", "obl"))
        for role, np, case, deprel in args:
            if np is not None:
                toks, head = self.np(np, case, role, wh_kind if wh_role == role else None)
                head.deprel, head.head = deprel, verb
                parts[role] = toks
        if wh_role == "location":
            w = self.fw1["where"]
            parts["location"] = [_Tok(w, w, "ADV", "advmod", verb, "O", "location", "core")]
        elif cl.location is not None:
            toks, head = self.np(cl.location, "loc", "location")
            head.deprel, head.head = "obl", verb
            parts["location"] = toks
        if wh_role == "time":
            w = self.fw1["when"]
            parts["time"] = [_Tok(w, w, "ADV", "advmod", verb, "O", "time", "core")]
        elif cl.time is not None:
            toks, head = self.date(cl.time)
            head.deprel, head.head = "obl", verb
            parts["time"] = toks
        if cl.manner is not None:
            adv = self.lemma(("adv", "", cl.manner))
            parts["manner"] = [_Tok(adv, adv, "ADV", "advmod", verb, "O", "manner", "core")]
        order = self.order
        if front in parts or (wh_role in parts and self.wh_front):
            order = list(order)
            for role in (front, wh_role if self.wh_front else None):
                if role in parts:
                    order.remove(role)
                    order.insert(0, role)
        toks = []
        for role in order:
            if role in parts:
                toks += parts[role]
        return toks, verb

    def tokens(self, sent: Sentence, wh: tuple[str, str] | None = None) -> list[_Tok]:
        """The tokens of a sentence in order (``wh=(role, kind)`` makes its first clause a question)."""
        toks, root = self.clause(sent.clauses[0], wh, sent.front)
        root.head, root.deprel = None, "root"
        for cl in sent.clauses[1:]:
            more, verb = self.clause(cl)
            verb.deprel, verb.head = "conj", root
            cc = self.fw(sent.conj)[0]
            toks += [_Tok(cc, cc, "CCONJ", "cc", verb, "O", "conj", "core")] + more
        mark = "?" if wh else "."
        mark = self.punct.get(mark, mark)
        toks.append(_Tok(mark, mark, _PUNCT_UPOS, "punct", root, "O", "punct", "core"))
        if self.cased:
            first = toks[0]
            first.form = first.form[:1].upper() + first.form[1:]
        return toks

    def text(self, sent: Sentence, wh: tuple[str, str] | None = None) -> str:
        """The detokenised text of a sentence (no space before punctuation)."""
        return "".join([t.form if t.upos == _PUNCT_UPOS or i == 0 else " " + t.form
                        for i, t in enumerate(self.tokens(sent, wh))])

    def realise(self, sent: Sentence, wh: tuple[str, str] | None = None) -> Realisation:
        """Realise a sentence with all annotations (``wh=(role, kind)`` makes it a question)."""
        toks = self.tokens(sent, wh)
        for i, t in enumerate(toks):
            t.idx = i + 1
        n = len(toks)
        space_after = [i + 1 < n and toks[i + 1].upos != _PUNCT_UPOS for i in range(n)]
        pieces, offsets, pos = [], [], 0
        for t, sp in zip(toks, space_after, strict=True):
            end = pos + len(t.form)
            offsets.append((pos, end))
            pieces.append(t.form + " " if sp else t.form)
            pos = end + 1 if sp else end
        return Realisation(
            forms=[t.form for t in toks], lemmas=[t.lemma for t in toks], upos=[t.upos for t in toks],
            feats=[t.feats for t in toks], heads=[0 if t.head is None else t.head.idx for t in toks],
            deprels=[t.deprel for t in toks], ner=[t.ner for t in toks], space_after=space_after,
            text="".join(pieces), offsets=offsets, roles=[(t.role, t.sub) for t in toks],
        )


_ORDERS = {
    "SVO": ("agent", "manner", "V", "patient", "recipient", "location", "time"),
    "SOV": ("agent", "time", "location", "recipient", "patient", "manner", "V"),
    "VSO": ("V", "agent", "patient", "recipient", "location", "time", "manner"),
}
