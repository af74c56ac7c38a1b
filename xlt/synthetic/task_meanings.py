"""Meanings for the tasks: NLI and PAWS-X pairs, QA questions and the Tatoeba sentences.

Labelled pairs come from operations on meanings, not on text: NLI drops or adds a modifier under the
premise's polarity (monotonicity), negates, swaps in an antonym or changes an argument
(:func:`_nli_pair`); PAWS-X paraphrases front an adjunct or reorder adjectives, non-paraphrases swap roles
(:func:`_paws_pair`). :func:`_askable` lists what a clause can be asked about (QA and MLM questions);
:func:`tatoeba_meanings` draws the retrieval sentences, distinct in every language.
"""

from __future__ import annotations

import random
from dataclasses import replace

from xlt.synthetic.lexicon import ENTITY_POOLS
from xlt.synthetic.meanings import _PROFILES, Clause, Sentence, _Sampler
from xlt.synthetic.world import World

NLI_LABELS = ("entailment", "neutral", "contradiction")


def _modifiers(cl: Clause) -> list[str]:
    present = []
    for role in ("location", "time", "manner"):
        if getattr(cl, role) is not None:
            present.append(role)
    for role in ("agent", "patient", "recipient"):
        np = getattr(cl, role)
        if np is not None and np.kind == "noun":
            if np.adjs:
                present.append(role + ".adj")
            if np.count is not None:
                present.append(role + ".count")
    return present


def _drop(cl: Clause, rng: random.Random) -> Clause | None:
    """Remove one modifier (the result is entailed by a positive clause)."""
    options = _modifiers(cl)
    if not options:
        return None
    what = rng.choice(options)
    if "." not in what:
        return replace(cl, **{what: None})
    role, part = what.split(".")
    np = getattr(cl, role)
    if part == "adj":
        adjs = list(np.adjs)
        adjs.pop(rng.randrange(len(adjs)))
        return replace(cl, **{role: replace(np, adjs=tuple(adjs))})
    return replace(cl, **{role: replace(np, count=None, plural=True, definite=False)})  # "3 dogs" -> "dogs"


def _add(cl: Clause, sampler: _Sampler) -> Clause | None:
    """Add one modifier that the clause does not state (unverifiable information)."""
    rng = sampler.rng
    options = [r for r in ("location", "time", "manner") if getattr(cl, r) is None]
    for role in ("agent", "patient"):
        np = getattr(cl, role)
        if np is not None and np.kind == "noun" and not np.adjs:
            options.append(role)
    if not options:
        return None
    what = rng.choice(options)
    if what == "location":
        return replace(cl, location=sampler.location(_PROFILES["rich"]))
    if what == "time":
        return replace(cl, time=sampler.date())
    if what == "manner":
        return replace(cl, manner=sampler.pick("adv"))
    np = getattr(cl, what)
    return replace(cl, **{what: replace(np, adjs=sampler.adjectives(np.cls, 1))})


def _change_argument(cl: Clause, sampler: _Sampler) -> Clause | None:
    """Replace an entity, a year or a count by a different one (same event, incompatible fact)."""
    rng = sampler.rng
    options = [r for r in ("agent", "patient", "recipient", "location")
               if getattr(cl, r) is not None and getattr(cl, r).is_entity]
    options += [r + ".count" for r in ("agent", "patient", "recipient")
                if getattr(cl, r) is not None and getattr(cl, r).count is not None]
    if cl.time is not None:
        options.append("time")
    if not options:
        return None
    what = rng.choice(options)
    if what == "time":
        return replace(cl, time=replace(cl.time, year=cl.time.year + rng.choice((-3, -2, -1, 1, 2, 5, 10))))
    if what.endswith(".count"):
        role = what.split(".")[0]
        np = getattr(cl, role)
        return replace(cl, **{role: replace(np, count=np.count + rng.randint(1, 9))})
    np = getattr(cl, what)
    pool = ENTITY_POOLS["first" if np.kind == "per" else "city" if np.kind == "loc" else "org"]
    new = (np.lex + rng.randint(1, pool - 1)) % pool
    return replace(cl, **{what: replace(np, lex=new)})


def _nli_pair(sampler: _Sampler, label: str) -> tuple[Clause, Clause]:
    """A premise and a hypothesis with the given label (monotonicity under negation is respected)."""
    rng = sampler.rng
    while True:
        premise = sampler.clause(_PROFILES["rich"])
        negated = rng.random() < 0.3
        premise = replace(premise, negated=negated)
        if label == "entailment":
            hyp = _add(premise, sampler) if negated else _drop(premise, rng)
        elif label == "neutral":
            hyp = _drop(premise, rng) if negated else _add(premise, sampler)
        elif negated:  # contradiction of a negated premise: the positive statement (possibly more specific)
            hyp = replace(premise, negated=False)
            if rng.random() < 0.4:
                hyp = _add(hyp, sampler) or hyp
        else:
            kind = rng.choice(("negate", "antonym", "argument"))
            if kind == "negate":
                hyp = replace(premise, negated=True)
                if rng.random() < 0.4:
                    hyp = _drop(hyp, rng) or hyp
            elif kind == "antonym":
                hyp = replace(premise, verb=(premise.verb[0], premise.verb[1] ^ 1))
            else:
                hyp = _change_argument(premise, sampler)
        if hyp is not None and hyp != premise:
            return premise, hyp


def _paws_pair(sampler: _Sampler, paraphrase: bool) -> tuple[Sentence, Sentence]:
    """PAWS-style pair: same meaning in another order, or the same words with swapped roles."""
    rng = sampler.rng
    while True:
        cl = sampler.clause(_PROFILES["rich"])
        if cl.verb[0] == "perceive" and (cl.patient is None or not cl.patient.animate):
            cl = replace(cl, patient=sampler.noun("animate") if rng.random() < 0.5 else sampler.entity("per"))
        adjuncts = [r for r in ("location", "time") if getattr(cl, r) is not None]
        front1 = rng.choice(adjuncts + [None])
        if paraphrase:
            fronts = [r for r in adjuncts + [None] if r != front1]
            np = cl.agent if cl.agent.kind == "noun" and len(cl.agent.adjs) == 2 else None
            if np is not None and rng.random() < 0.5:
                other = replace(cl, agent=replace(np, adjs=np.adjs[::-1]))
                return Sentence((cl,), front=front1), Sentence((other,), front=front1)
            if not fronts:
                continue
            return Sentence((cl,), front=front1), Sentence((cl,), front=rng.choice(fronts))
        if cl.verb[0] == "perceive":
            swapped = replace(cl, agent=cl.patient, patient=cl.agent)
        elif cl.verb[0] == "give":
            swapped = replace(cl, agent=cl.recipient, recipient=cl.agent)
        else:
            continue
        if swapped.agent.kind == "pron" or (swapped.patient and swapped.patient.kind == "pron"):
            continue
        if swapped == cl:
            continue
        return Sentence((cl,), front=front1), Sentence((swapped,), front=rng.choice(adjuncts + [None]))


def _tatoeba(world: World, n: int) -> tuple[list[Sentence], dict[str, list[str]]]:
    sampler = world.sampler("tatoeba")
    seen: dict[str, set[str]] = {code: set() for code in world.grammars}
    texts: dict[str, list[str]] = {code: [] for code in world.grammars}
    out: list[Sentence] = []
    while len(out) < n:
        sent = sampler.sentence("simple")
        cand = {code: g.text(sent) for code, g in world.grammars.items()}
        if any(cand[c] in seen[c] for c in cand):
            continue
        for c, t in cand.items():
            seen[c].add(t)
            texts[c].append(t)
        out.append(sent)
    return out, texts


def tatoeba_meanings(world: World, n: int) -> list[Sentence]:
    """The ``n`` meanings of the Tatoeba files in line order (no line repeats within any language)."""
    return _tatoeba(world, n)[0]


def _askable(cl: Clause) -> list[tuple[str, str]]:
    out = [("agent", "who" if cl.agent.animate else "what")] if cl.agent.kind != "pron" else []
    if cl.patient is not None:
        out.append(("patient", "who" if cl.patient.animate else "what"))
    if cl.location is not None:
        out.append(("location", "where"))
    if cl.time is not None:
        out.append(("time", "when"))
    for role in ("agent", "patient"):
        np = getattr(cl, role)
        if np is not None and np.count is not None:
            out.append((role + ".count", "howmany"))
    return out


def _question_for(sent: Sentence, rng: random.Random) -> tuple[Sentence, tuple[str, str] | None]:
    sent = Sentence(sent.clauses[:1])
    options = _askable(sent.clauses[0])
    if not options:
        return sent, None
    role, kind = rng.choice(options)
    return sent, (role.split(".")[0], kind)
