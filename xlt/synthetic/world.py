"""The world of one seed: the shared names, every language's lexicon and grammar, and meaning streams.

:class:`World` is the one object the rest of the generator needs: ``World(seed).grammar(code)`` realises
meanings in a language, :meth:`World.sampler` gives a deterministic stream of meanings, and
:meth:`World.entity_strings` the surface forms of a meaning's names and numbers.
"""

from __future__ import annotations

import random

from xlt.synthetic.grammar import _Grammar
from xlt.synthetic.lexicon import ENTITY_POOLS, _Lexicon, _make_word
from xlt.synthetic.meanings import Sentence, _Sampler
from xlt.synthetic.specs import _SPEC_BY_CODE, SOURCE, SPECS


class World:
    """All synthetic languages for one seed: lexicons, shared names and grammars.

    ``World(seed).grammar(code).realise(sentence)`` realises a meaning; :meth:`sampler` draws meanings.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        rng = random.Random(f"{seed}/names")
        used: set[str] = set()
        self.names: dict[str, list[str]] = {}
        for pool, n in ENTITY_POOLS.items():
            forms = []
            while len(forms) < n:
                form = _make_word(rng, "names")
                if form not in used and len(form) > 2:
                    used.add(form)
                    forms.append(form)
            self.names[pool] = forms
        source = _Lexicon(_SPEC_BY_CODE[SOURCE], seed, None)
        self.lexicons = {SOURCE: source}
        for spec in SPECS:
            if spec.code != SOURCE:
                self.lexicons[spec.code] = _Lexicon(spec, seed, source)
        self.grammars = {s.code: _Grammar(s, self.lexicons[s.code], self.names) for s in SPECS}

    def grammar(self, code: str) -> _Grammar:
        """The grammar of language ``code``."""
        return self.grammars[code]

    def sampler(self, stream: str) -> _Sampler:
        """A meaning sampler with its own deterministic random stream."""
        return _Sampler(random.Random(f"{self.seed}/{stream}"))

    def entity_strings(self, sent: Sentence, code: str) -> list[str]:
        """The surface strings of the named entities and numbers of ``sent`` in language ``code``."""
        g = self.grammars[code]
        out: list[str] = []
        for cl in sent.clauses:
            for np in (cl.agent, cl.patient, cl.recipient, cl.location):
                if np is None:
                    continue
                if np.is_entity:
                    toks, _ = g.np(np, "nom", "x")
                    out.append(" ".join(t.form for t in toks if t.upos == "PROPN"))
                if np.count is not None:
                    out.append(g.number(np.count))
            if cl.time is not None:
                out.append(g.number(cl.time.year))
        return out
