"""Who a speaker phrase stands for, and which configured entities a stretch of text names.

Coreference here is heuristic and runs in reading order over one article:
- a surname ("Sacks") becomes the longest full name in the article that ends with it;
- "he"/"she" become the most recent compatible person (subject mentions first), where the
  gender comes from titles, gendered nouns, a first-name list or earlier pronoun use;
- "they" becomes the most recent plural speaker or organisation;
- a definite role ("the analyst", "The official") becomes the first mention with the same
  head noun, and a role noun with no such mention ("the expert") the most recent unnamed
  role speaker;
- "the company" becomes the most recent organisation, "its CEO" that organisation's CEO.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy
from spacy.attrs import ENT_IOB, POS
from spacy.parts_of_speech import PROPN as PROPN_ID
from spacy.tokens import Doc, Span, Token

from schemas.config import Entity
from tasks.claims import lexicon as lex
from tasks.claims.quotes import QuoteIndex

Gender = Literal["m", "f", "?"]
Kind = Literal["person", "group", "org", "desc", "pronoun", "other"]


@dataclass
class Mention:
    pos: int
    text: str
    kind: Kind
    head: str  # lower-case head lemma, for "the analyst" -> "a telecom industry analyst"
    gender: Gender = "?"
    subject: bool = False
    plural: bool = False


@dataclass
class Speaker:
    text: str
    kind: Kind
    entity: str | None = None
    about: tuple[str, ...] = ()  # entities the speaker speaks for ("Huawei's CEO")


@dataclass
class EntityIndex:
    """Where each configured entity is named in one text."""

    entities: Sequence[Entity]
    hits: list[tuple[int, int, Entity]] = field(default_factory=list)

    @classmethod
    def build(cls, text: str, entities: Sequence[Entity]) -> EntityIndex:
        index = cls(entities)
        for entity in entities:
            for start, end in _find_names(text, entity.names):
                index.hits.append((start, end, entity))
        index.hits.sort(key=lambda hit: hit[0])
        return index

    def named_in(self, start: int, end: int) -> list[Entity]:
        return [e for s, _, e in self.hits if start <= s < end]

    def last_before(self, pos: int, kinds: frozenset[str]) -> Entity | None:
        best: Entity | None = None
        for start, _, entity in self.hits:
            if start >= pos:
                break
            if entity.kind in kinds:
                best = entity
        return best

    def exact(self, name: str) -> Entity | None:
        folded = re.sub(r"^(?:the|a|an) ", "", _fold(name))
        for entity in self.entities:
            if any(_fold(alias) == folded for alias in entity.names):
                return entity
        return None


_NAME_CACHE: dict[tuple[str, ...], re.Pattern[str]] = {}


def _find_names(text: str, names: tuple[str, ...]) -> list[tuple[int, int]]:
    pattern = _NAME_CACHE.get(names)
    if pattern is None:
        # longest first so "Huawei Technologies Co." wins over "Huawei"; case-sensitive
        # because aliases such as "US" must not match the pronoun "us"
        alts = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w.])(?:{alts})(?!\w)")
        _NAME_CACHE[names] = pattern
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def _fold(text: str) -> str:
    return re.sub(r"\W+", " ", text).strip().lower()


def _strip_titles(tokens: list[Token]) -> list[Token]:
    while len(tokens) > 1 and tokens[0].lower_ in lex.TITLES:
        tokens = tokens[1:]
    while tokens and tokens[-1].text in {"'s", "’s", "'", "’"}:
        tokens = tokens[:-1]
    return tokens


def _gender_of(tokens: Sequence[Token]) -> Gender:
    for tok in tokens:
        low = tok.lower_
        if low in lex.MALE_TITLES or low in lex.MALE_NOUNS:
            return "m"
        if low in lex.FEMALE_TITLES or low in lex.FEMALE_NOUNS:
            return "f"
    names = [t.lower_ for t in tokens if t.pos_ == "PROPN" and t.lower_ not in lex.TITLES]
    if names:
        if names[0] in lex.FEMALE_FIRST_NAMES:
            return "f"
        if names[0] in lex.MALE_FIRST_NAMES:
            return "m"
    return "?"


def _looks_like_person(tokens: Sequence[Token]) -> bool:
    """A name with a title before it ("Sen. Cruz") or a known first name ("Jane Miller")."""
    if not tokens or tokens[0].pos_ != "PROPN":
        return False
    first = tokens[0]
    prev = first.doc[first.i - 1] if first.i > 0 else None
    # a title or a role word right before: "Sen. Cruz", "spokesperson Mao Ning"
    return first.lower_ in lex.FIRST_NAMES or (
        prev is not None and prev.lower_ != "former"
        and (prev.lower_ in lex.TITLES or prev.lower_ in lex.ROLE_NOUNS))


def _person_spans(doc: Doc) -> list[Span]:
    """People named in `doc`: NER's PERSON entities, or, when the pipeline runs without
    NER (it is the slowest component), runs of proper nouns that look like a person."""
    if doc.to_array(ENT_IOB).any():  # has_annotation walks every token
        return [ent for ent in doc.ents if ent.label_ in lex.PERSON_ENT_LABELS]
    runs: list[Span] = []
    n = len(doc)
    # proper nouns are few: find them on the POS array, not token by token
    proper = numpy.flatnonzero(doc.to_array(POS) == PROPN_ID).tolist()
    is_proper = set(proper)
    last = -1
    for i in proper:
        if i < last or doc[i].lower_ in lex.TITLES:
            continue
        j = i
        while j < n and j in is_proper and j - i < 4:
            j += 1
        last = j
        # "Commerce Secretary Gina Raimondo", "Chief Executive Jensen Huang": the name is
        # what follows the last title or role word
        start = max((k + 1 for k in range(i, j - 1)
                     if doc[k].lower_ in lex.TITLES or doc[k].lower_ in lex.ROLE_NOUNS),
                    default=i)
        if not any(t.lower_ in lex.ORG_WORDS for t in doc[start:j]):
            runs.append(doc[start:j])
    # "Tom Baker ... Baker said": a two- or three-word name whose last word is used alone
    alone = {r[0].text for r in runs if len(r) == 1}
    return [r for r in runs if _looks_like_person(list(r)) or (
        2 <= len(r) <= 3 and r[-1].text in alone and all(t.text[:1].isupper() for t in r))]


class Resolver:
    """Reading-order state for resolving the speakers of one article."""

    def __init__(self, doc: Doc, index: EntityIndex, text: str | None = None,
                 quotes: QuoteIndex | None = None) -> None:
        self.doc = doc
        # Doc.text is rebuilt from the tokens on every access: pass it in when known
        self.text = doc.text if text is None else text
        self.index = index
        self.mentions: list[Mention] = []
        self.full_names: dict[str, str] = {}  # surname -> longest full name in the article
        self.genders: dict[str, Gender] = {}
        self.first_desc: dict[str, str] = {}  # head lemma -> first description with it
        # person -> the configured organisation they speak for ("Nvidia CEO Jensen Huang",
        # "Eric Xu, Huawei's rotating chairman"): their claims are about it too
        self.affiliation: dict[str, str] = {}
        # (position, role lemma, person) from appositions: "Tomás Ferreira, an analyst at
        # X" is who a later "the analyst" is
        self.roles: list[tuple[int, str, str]] = []
        self._quotes = quotes  # the extractor's own; built here when first needed if not
        self._collect_people()

    # -- article-wide name table --------------------------------------------------------

    def _collect_people(self) -> None:
        people = _person_spans(self.doc)
        for ent in people:
            tokens = _strip_titles([t for t in ent if not t.is_punct or t.text == "."])
            if not tokens:
                continue
            name = self.text[tokens[0].idx: tokens[-1].idx + len(tokens[-1])].strip()
            surname = tokens[-1].text
            if not name or not surname.strip():
                continue
            if len(tokens) > 1 and len(name) > len(self.full_names.get(surname, "")):
                self.full_names[surname] = name
            gender = _gender_of([*ent.doc[max(ent.start - 1, 0): ent.start], *ent])
            full = self.full_names.get(surname, name)
            if gender != "?":
                self.genders.setdefault(full, gender)
            subject = any(t.dep_ in ("nsubj", "nsubjpass") for t in ent)
            self.mentions.append(Mention(ent.start_char, full, "person", surname.lower(),
                                         gender, subject))
        for name in list(self.full_names.values()):
            words = name.split()
            if len(words) == 2:  # "Mao" for "Mao Ning", where the family name comes first
                self.full_names.setdefault(words[0], name)
        for mention in self.mentions:  # a surname met before its full name
            words = mention.text.split()
            if words:
                mention.text = self.full_names.get(words[-1], mention.text)
        self.mentions.sort(key=lambda m: m.pos)
        for ent in people:
            self._collect_role(ent)

    def _collect_role(self, ent: Span) -> None:
        """The organisation and role words next to a person's name: before it ("Huawei
        founder Ren Zhengfei") or in an apposition after it ("Jensen Huang, Nvidia's chief
        executive, ..." / "..., an analyst at ...")."""
        doc = self.doc
        surname = ent[-1].text
        name = self.full_names.get(surname, ent.text)
        # only the words right before the name, in its phrase (up to 5): stop at a
        # punctuation mark (not "'s"), a verb or a preposition
        first = ent.start
        while first > max(ent.start - 5, 0):
            tok = doc[first - 1]
            if (tok.is_punct and tok.text != "'s") or tok.pos_ in ("VERB", "AUX", "ADP"):
                break
            first -= 1
        before = list(doc[first: ent.start])
        after: list[Token] = []
        if ent.end < len(doc) and doc[ent.end].text == ",":
            for tok in doc[ent.end + 1: ent.end + 12]:
                if tok.text in (",", ".", ";", "(", ")") or tok.pos_ in ("VERB", "AUX"):
                    break
                after.append(tok)
        for words in (before, after):
            self._note_role(name, ent.start_char, words, appositive=words is after)

    def _note_role(self, name: str, pos: int, words: Sequence[Token], *,
                   appositive: bool) -> None:
        """Remember what the words describing a person say: the organisation they speak for
        (a speaking role and an organisation named, or, for a bare "Chief Executive X",
        the organisation the text was just about) and, for an apposition, their role."""
        if not words:
            return
        lemmas = {t.lower_ for t in words}
        start, end = words[0].idx, words[-1].idx + len(words[-1])
        if lemmas & lex.SPOKES_ROLES:
            orgs = [e.name for s, _, e in self.index.hits
                    if start <= s < end and e.kind == "org"]
            if not orgs and not any(t.pos_ == "PROPN" and t.lower_ not in lex.TITLE_WORDS
                                    for t in words):
                story = self._story_org(start)
                orgs = [story] if story else []
            if orgs:
                self.affiliation.setdefault(name, orgs[0])
        if appositive:
            for tok in words:
                if tok.pos_ == "NOUN" and tok.lemma_.lower() in lex.ROLE_NOUNS:
                    self.roles.append((pos, tok.lemma_.lower(), name))
                    break

    def _person_name(self, tokens: list[Token]) -> str:
        tokens = _strip_titles(tokens) or tokens
        name = self.text[tokens[0].idx: tokens[-1].idx + len(tokens[-1])]
        return self.full_names.get(tokens[-1].text, name)

    # -- resolution ----------------------------------------------------------------------

    def resolve(self, head: Token, tokens: list[Token]) -> Speaker:
        """The speaker that the phrase `tokens` (headed by `head`) stands for."""
        low = head.lower_
        pos = tokens[0].idx
        if head.pos_ == "PRON" or low in lex.SPEAKER_PRONOUNS:
            return self._pronoun(low, pos)
        det = next((t.lower_ for t in tokens if t.dep_ == "det" and t.head.i == head.i), None)
        poss = next((t for t in tokens if t.dep_ == "poss" and t.head.i == head.i), None)
        if head.pos_ == "PROPN" or head.ent_type_ in ("PERSON", "ORG", "GPE", "NORP") or \
                head.text in self.full_names:
            return self._named(head, tokens)
        if poss is not None and poss.lower_ in ("its", "their"):
            org = self._org_before(pos)
            if org is not None:
                rest = self.text[poss.idx + len(poss): tokens[-1].idx + len(tokens[-1])]
                return self._remember(head, Speaker(f"{org}'s{rest}", "desc",
                                                    about=(org,)), pos)
        lemma = head.lemma_.lower()
        if det == "the" and len(tokens) <= 3:
            if lemma in lex.ORG_ANAPHORS:
                org = self._org_before(pos)
                if org is not None:
                    return Speaker(org, "org", entity=org)
            named_role = self._role_person(lemma, pos)
            if named_role is not None:
                return self._person(named_role)
            if lemma in self.first_desc:
                return self._as_speaker(self.first_desc[lemma])
            if lemma in lex.ROLE_NOUNS:
                for mention in reversed(self.mentions):
                    if mention.pos < pos and mention.kind == "desc" and \
                            mention.head in lex.ROLE_NOUNS and pos - mention.pos < 3000:
                        return self._as_speaker(mention.text)
        text = self.text[tokens[0].idx: tokens[-1].idx + len(tokens[-1])]
        named = self._apposition_name(head)
        if named is not None:
            return self._remember(head, Speaker(named, "person"), pos)
        kind: Kind = "group" if head.tag_ in ("NNS", "NNPS") else "desc"
        speaker = self._as_speaker(text, kind)
        if lemma in lex.SPOKES_ROLES and any(t.lemma_.lower() in lex.ORG_ANAPHORS
                                             for t in tokens if t.i < head.i):
            # "a company spokesperson" speaks for the story's company
            org = self._story_org(pos) or self._org_before(pos)
            if org is not None:
                speaker.about = tuple(dict.fromkeys((*speaker.about, org)))
        return self._remember(head, speaker, pos)

    def _story_org(self, pos: int) -> str | None:
        """The organisation a bare title ("Chief Executive Jensen Huang") belongs to: the
        first one named outside quotation marks in its paragraph before it, else in the
        paragraphs before. A quotation often names a rival ("... a customer Huawei gains,"
        Chief Executive Jensen Huang said), and so may the end of the lede."""
        if self._quotes is None:
            self._quotes = QuoteIndex(self.text)
        end = pos
        for _ in range(3):
            start = self.text.rfind("\n", 0, max(end - 1, 0)) + 1
            for at, _, entity in self.index.hits:
                if start <= at < end and entity.kind == "org" and \
                        self._quotes.containing(at) is None:
                    return entity.name
            if start == 0:
                break
            end = start
        return None

    def _role_person(self, lemma: str, pos: int) -> str | None:
        """The person a later "the <role>" means: the most recent one introduced with that
        role in an apposition, unless a description with that head came after it."""
        found = next(((at, name) for at, role, name in reversed(self.roles)
                      if role == lemma and at < pos and pos - at < 3000), None)
        if found is None:
            return None
        later_desc = any(m.kind == "desc" and m.head == lemma and found[0] < m.pos < pos
                         for m in self.mentions)
        return None if later_desc else found[1]

    def _person(self, name: str) -> Speaker:
        entity, about = self._entity_of(name)
        return Speaker(name, "person", entity, about)

    def _as_speaker(self, text: str, kind: Kind = "desc") -> Speaker:
        entity = self.index.exact(text)
        about = tuple(e.name for e in self.index.entities if _find_names(text, e.names))
        if entity is not None:
            return Speaker(text, "org" if entity.kind != "person" else "person",
                           entity.name, about)
        return Speaker(text, kind, None, about)

    def _remember(self, head: Token, speaker: Speaker, pos: int) -> Speaker:
        lemma = head.lemma_.lower()
        self.first_desc.setdefault(lemma, speaker.text)
        if speaker.kind in ("desc", "person", "group", "org"):
            self.mentions.append(Mention(pos, speaker.text, speaker.kind, lemma,
                                         _gender_of(list(head.subtree)), True,
                                         head.tag_ in ("NNS", "NNPS") and
                                         speaker.kind != "person"))
            self.mentions.sort(key=lambda m: m.pos)
        return speaker

    def _named(self, head: Token, tokens: list[Token]) -> Speaker:
        # keep only the name itself: "Former CIA Director David Petraeus" -> "David Petraeus"
        name_toks = [t for t in tokens if t.i <= head.i and
                     (t.i == head.i or (t.dep_ in ("compound", "flat") and t.pos_ == "PROPN"))]
        if head.ent_type_ == "PERSON" or head.text in self.full_names or \
                _looks_like_person(name_toks or [head]):
            name = self._person_name(name_toks or [head])
            self._note_appositions(head, name, tokens[0].idx)
            return self._remember(head, self._person(name), tokens[0].idx)
        text = self.text[tokens[0].idx: tokens[-1].idx + len(tokens[-1])]
        kind: Kind = "org" if head.ent_type_ in ("ORG", "GPE", "NORP") else "desc"
        if kind == "desc" and head.pos_ == "PROPN" and head.ent_type_ == "":
            kind = "person" if len(name_toks) > 1 else "desc"
        if kind == "person":
            self._note_appositions(head, text, tokens[0].idx)
        return self._remember(head, self._as_speaker(text, kind), tokens[0].idx)

    def _note_appositions(self, head: Token, name: str, pos: int) -> None:
        for child in head.rights:  # "..., said Tomás Ferreira, an analyst at X"
            if child.dep_ == "appos" and child.pos_ == "NOUN":
                self._note_role(name, pos, list(child.subtree), appositive=True)

    def _apposition_name(self, head: Token) -> str | None:
        for child in head.rights:
            if child.dep_ == "appos" and child.pos_ == "PROPN":
                toks = [t for t in child.subtree if t.i <= child.i and t.pos_ == "PROPN"]
                if toks:
                    return self._person_name(toks)
        return None

    def _org_before(self, pos: int) -> str | None:
        entity = self.index.last_before(pos, frozenset({"org"}))
        if entity is not None:
            return entity.name
        for mention in reversed(self.mentions):
            if mention.pos < pos and mention.kind == "org":
                return mention.text
        return None

    def _pronoun(self, low: str, pos: int) -> Speaker:
        if low in ("he", "she"):
            want: Gender = "m" if low == "he" else "f"
            fallback: Mention | None = None
            for mention in reversed(self.mentions):
                if mention.pos >= pos or mention.plural or mention.kind in ("org", "group"):
                    continue
                if pos - mention.pos > 2500:
                    break
                gender = self.genders.get(mention.text, mention.gender)
                if gender not in ("?", want):
                    continue
                if mention.subject:
                    self.genders.setdefault(mention.text, want)
                    return self._person(mention.text)
                fallback = fallback or mention
            if fallback is not None:
                self.genders.setdefault(fallback.text, want)
                return self._person(fallback.text)
        elif low == "they":
            for mention in reversed(self.mentions):
                if mention.pos < pos and (mention.plural or mention.kind in ("org", "group")):
                    if pos - mention.pos > 2000:
                        break
                    return Speaker(mention.text, mention.kind,
                                   *self._entity_of(mention.text))
        return Speaker(self.text[pos: pos + len(low)], "pronoun")

    def _entity_of(self, text: str) -> tuple[str | None, tuple[str, ...]]:
        entity = self.index.exact(text)
        org = self.affiliation.get(text)
        spoken_for = (org,) if org else ()
        if entity is not None:
            return entity.name, tuple(dict.fromkeys((entity.name, *spoken_for)))
        about = tuple(e.name for e in self.index.entities if _find_names(text, e.names))
        return None, tuple(dict.fromkeys((*about, *spoken_for)))


_ANAPHOR_WORDS = re.compile(
    r"\b(?:" + "|".join(sorted(lex.ORG_ANAPHORS | lex.COUNTRY_ANAPHORS)) + r")\b", re.I)


def anaphor_entities(span: Span, index: EntityIndex) -> list[str]:
    """Entities that "the company" or "the country" in `span` refer back to."""
    out: list[str] = []
    if not _ANAPHOR_WORDS.search(span.text):
        return out  # most contents name no "company" or "country": skip the token walk
    for tok in span:
        lemma = tok.lemma_.lower()
        if tok.pos_ != "NOUN" or tok.tag_ != "NN":
            continue
        children = list(tok.children)
        # only a bare "the company": "the Biden administration" names its own referent
        if not children or children[0].lower_ != "the" or any(
                c.dep_ in ("compound", "amod", "poss") for c in children):
            continue
        kinds = frozenset({"org"}) if lemma in lex.ORG_ANAPHORS else \
            frozenset({"country"}) if lemma in lex.COUNTRY_ANAPHORS else None
        if kinds is None:
            continue
        entity = index.last_before(tok.idx, kinds)
        if entity is not None:
            out.append(entity.name)
    return out
