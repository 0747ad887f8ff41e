"""Word lists the claim extractor reads: attribution cues, role nouns, pronouns, names.

Kept apart from the parsing logic so that a missed cue is fixed by adding one word here.
The verb lists are general English reporting and belief verbs, grouped by the complement
that carries the claim (clause, object, preposition or infinitive).
"""

from __future__ import annotations


def _words(text: str) -> list[str]:
    """A word list written as plain text, one blank between words."""
    return text.split()


# Verbs whose clausal complement (or direct quote) is the claim: "X said (that) ...".
SPEECH_VERBS = frozenset(_words("""
say tell add write ask note report announce suggest argue explain claim state declare insist
warn acknowledge admit confirm deny reveal predict respond reply tweet post conclude recall
contend assert maintain indicate emphasize emphasise stress reiterate observe testify allege
complain concede caution remark mention tout boast vow pledge promise threaten urge
recommend propose comment answer charge agree disclose estimate signal hint quip joke muse
speculate counter retort confide inform assure remind proclaim affirm underscore highlight
lament grumble scoff concur dispute question wonder guarantee project forecast calculate
figure repeat shout yell cry exclaim whisper mutter told believe think fear hope expect feel
know worry doubt suspect assume guess reckon consider find learn understand realize realise
recognize recognise see imagine presume show demonstrate prove determine establish
"""))

# Belief / report verbs whose subject may be inanimate ("The poll shows", "Data suggest").
EVIDENCE_VERBS = frozenset(_words("""
show suggest indicate reveal demonstrate find prove conclude estimate project confirm say
report state note read
"""))

# Event verbs: an act, not words spoken or thought ("Huawei unveiled a cluster", "Trump
# signed the order", "officials plan to ..."). A claim they carry is stored with
# quote_kind "event", which alert rules skip unless they set include_events. "announce" /
# "release" are events with an object ("announced a new chip"); with a clause or a
# quotation ("announced that ...", 'announced: "..."') they report words.
EVENT_VERBS = frozenset(_words("""
unveil launch sign ban ship plan release introduce debut roll deploy announce unveiling
"""))
EVENT_ALWAYS = frozenset(_words("unveil launch sign ban ship plan debut roll deploy"))

# Raising verbs: "X seemed to Y" is the writer's impression, with X inside the content.
RAISING_VERBS = frozenset(_words("seem appear"))

# Verbs whose direct object is what is claimed or judged: "criticized the rule".
OBJECT_VERBS = frozenset(_words("""
criticize criticise praise blame accuse attack endorse support oppose reject defend dismiss
question deny condemn slam blast applaud welcome back highlight cite reiterate announce
propose dispute challenge decry lament tout demand seek request describe call label dub
predict acknowledge admit confirm reveal report recommend urge promise pledge threaten vow
want favor favour prefer mock ridicule disparage denounce hail commend laud champion push
emphasize emphasise stress underscore discuss mention raise
"""))

# Verb + preposition cues: "pointed to", "warned of", "called for".
PREP_CUES: dict[str, frozenset[str]] = {
    "point": frozenset({"to", "at"}),
    "warn": frozenset({"of", "about", "against"}),
    "talk": frozenset({"about", "of"}),
    "speak": frozenset({"about", "of", "on"}),
    "complain": frozenset({"about", "of"}),
    "focus": frozenset({"on"}),
    "call": frozenset({"for", "on"}),
    "refer": frozenset({"to"}),
    "comment": frozenset({"on"}),
    "insist": frozenset({"on"}),
    "argue": frozenset({"for", "against"}),
    "advocate": frozenset({"for"}),
    "push": frozenset({"for"}),
    "press": frozenset({"for"}),
    "hint": frozenset({"at"}),
    "worry": frozenset({"about"}),
    "rail": frozenset({"against"}),
    "testify": frozenset({"about", "on"}),
    "agree": frozenset({"with", "on"}),
    "object": frozenset({"to"}),
    "caution": frozenset({"against", "about"}),
    "boast": frozenset({"about", "of"}),
    "brag": frozenset({"about"}),
    "write": frozenset({"about", "of"}),
    "say": frozenset({"of", "about"}),
    "ask": frozenset({"about"}),
    "lash": frozenset({"out"}),
    "vote": frozenset({"for", "against"}),
    "campaign": frozenset({"for", "against"}),
    "fight": frozenset({"for", "against"}),
    "side": frozenset({"with"}),
}

# Verbs whose infinitive complement is the claim: "vowing to ensure", "refused to say".
XCOMP_VERBS = frozenset(_words("""
vow promise pledge threaten plan want hope refuse decline seek intend expect urge agree
offer aim wish vote propose demand ask call tell encourage press push advise warn claim
appear seem
"""))

# Light verb + noun cues: "expressed concern over", "voiced support for".
LIGHT_VERBS = frozenset(_words("""
express voice raise share offer air signal lend register state
"""))
LIGHT_NOUNS = frozenset(_words("""
concern concerns doubt doubts fear fears support opposition hope hopes skepticism scepticism
optimism confidence frustration worry worries regret alarm outrage anger dismay
disappointment satisfaction approval disapproval reservation reservations objection
objections interest belief view views sympathy solidarity gratitude appreciation criticism
praise
"""))

# "declined to comment", "would not comment": a refusal to speak is not a claim.
NO_COMMENT = frozenset(_words("comment elaborate speculate respond discuss"))
REFUSALS = frozenset(_words("decline refuse"))

# Subjects that cannot hold a view: a non-speech cue verb ("push", "back") with one of
# these as subject ("a proposal would push buyers toward X") is nobody's claim.
INANIMATE = frozenset(_words("""
proposal plan rule law bill move decision measure policy ban restriction restrictions deal
order regulation regulations change changes effort program programme tariff tariffs sanction
sanctions step action rise fall increase decline growth price prices market markets sale
sales demand supply chip chips product products technology system
"""))

# Documents that speak for their authors: "In a new poll, ...", "In a statement, ...".
SOURCE_NOUNS = frozenset(_words("""
poll survey study report statement letter memo interview speech op-ed editorial column
tweet post filing lawsuit complaint release ad advertisement video email message remarks
testimony analysis assessment document brief ruling opinion
"""))

# Subjects that are the author's own discourse, never a speaker: "This rhetoric highlights".
DEMONSTRATIVES = frozenset({"this", "these", "that", "those"})

# Role nouns that can stand for a previously introduced speaker: "the expert", "the official".
ROLE_NOUNS = frozenset(_words("""
official officials analyst analysts expert experts spokesman spokeswoman spokesperson source
sources observer observers researcher researchers scholar scholars professor economist
economists executive executives ceo chief chairman chairwoman chair president minister
secretary senator lawmaker lawmakers representative director adviser advisor aide aides
diplomat diplomats commentator critic critics insider insiders person man woman author
candidate governor mayor leader leaders lawyer attorney judge regulator regulators officer
strategist consultant specialist academic scientist scientists engineer founder investor
"""))

# Roles whose holder speaks for their organisation: "Nvidia CEO Jensen Huang" and "Eric Xu,
# Huawei's rotating chairman" make claims about Nvidia and Huawei.
SPOKES_ROLES = frozenset(_words("""
ceo chief executive spokesperson spokesman spokeswoman founder co-founder cofounder chairman
chairwoman chair president
"""))

# Collective nouns that, preceded by "the", stand for the most recent organisation.
ORG_ANAPHORS = frozenset(_words("""
company firm giant maker manufacturer corporation vendor startup carrier provider supplier
conglomerate chipmaker automaker retailer
"""))
COUNTRY_ANAPHORS = frozenset(_words("""
country nation
"""))

MALE_PRONOUNS = frozenset({"he", "him", "his", "himself"})
FEMALE_PRONOUNS = frozenset({"she", "her", "hers", "herself"})
PLURAL_PRONOUNS = frozenset({"they", "them", "their", "themselves"})
SPEAKER_PRONOUNS = frozenset({"he", "she", "they", "we", "i", "you"})

TITLES = frozenset(_words("""
mr mr. mrs mrs. ms ms. miss dr dr. sen sen. rep rep. gov gov. president senator
representative governor secretary minister judge justice general gen. gen col. col sir dame
lord lady prof prof. professor rev rev. former
"""))
# Words of a title or role, capitalised or not: "Chief Executive", "Commerce Secretary".
TITLE_WORDS = TITLES | ROLE_NOUNS | SPOKES_ROLES
MALE_TITLES = frozenset({"mr", "mr.", "sir", "lord"})
FEMALE_TITLES = frozenset({"mrs", "mrs.", "ms", "ms.", "miss", "dame", "lady"})
MALE_NOUNS = frozenset(_words("""
man spokesman chairman congressman businessman father son brother husband king
"""))
FEMALE_NOUNS = frozenset(_words("""
woman spokeswoman chairwoman congresswoman businesswoman mother daughter sister wife queen
"""))

# Common first names, only to tell "he" from "she" when the text itself gives no hint.
FEMALE_FIRST_NAMES = frozenset(_words("""
mary patricia jennifer linda elizabeth barbara susan jessica sarah karen nancy lisa betty
margaret sandra ashley kimberly emily donna michelle dorothy carol amanda melissa deborah
stephanie rebecca sharon laura cynthia kathleen amy shirley angela helen anna brenda pamela
nicole emma samantha katherine christine debra rachel catherine carolyn janet ruth maria
heather diane virginia julie joyce victoria olivia kelly christina lauren joan evelyn judith
megan cheryl andrea hannah martha jacqueline frances gloria ann teresa kathryn sara janice
jean alice madison doris abigail julia judy grace denise amber marilyn beverly danielle
theresa sophia marie diana brittany natalie isabella charlotte rose alexis kayla hillary
nikki kellyanne condoleezza madeleine kamala marine ivanka melania chelsea huma debbie
loretta sheryl elise tulsi kirsten maxine ileana cathy hope kate claire sally jill michele
dianne meg carly jane ann anne liz beth kim sue pat lynn
"""))
MALE_FIRST_NAMES = frozenset(_words("""
james robert john michael david william richard joseph thomas charles christopher daniel
matthew anthony mark donald steven paul andrew joshua kenneth kevin brian george timothy
ronald edward jason jeffrey ryan jacob gary nicholas eric jonathan stephen larry justin
scott brandon benjamin samuel gregory alexander frank patrick raymond jack dennis jerry
tyler aaron jose adam nathan henry douglas zachary peter kyle ethan walter noah jeremy
christian keith roger terry gerald harold sean austin carl arthur lawrence dylan jesse
jordan bryan billy joe bruce gabriel logan albert willie alan juan wayne elijah randy roy
vincent ralph eugene russell bobby mason philip louis barack bernie bill mike mitch ted
marco jeb chris rand newt rudy reince vladimir xi recep boris emmanuel shinzo narendra mitt
lindsey tim jim ben evan kellogg rex steve jared jeff rick ron elon tom dan sam nick jon
pete alex ken don doug greg matt nate andy tony ed bob rob jay
"""))

FIRST_NAMES = FEMALE_FIRST_NAMES | MALE_FIRST_NAMES

# Last words of organisation names, so a run of proper nouns is not taken for a person.
ORG_WORDS = frozenset(_words("""
post times news journal party house department committee campaign inc inc. corp corp. co
co. university institute association council court senate congress network center centre
foundation agency administration bureau office commission group club church bank fund
company street county city state states ministry ministries embassy parliament government
authority authorities organization organisation union alliance federation corporation
technologies holdings systems capital markets labs laboratories semiconductor electronics
"""))

PERSON_ENT_LABELS = frozenset({"PERSON"})
ORG_ENT_LABELS = frozenset({"ORG", "NORP", "GPE"})
