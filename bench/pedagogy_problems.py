"""The red-team set of ``bench.pedagogy``: course problems with keys, and a learner's wrong try.

Each problem has a statement, a short key (a verdict, a term, a name or a number),
the other forms an instructor would accept, the pages that teach it (the first is
where the key is stated), an evidence phrase that must be on that first page
(checked against the page text before every run, so a wrong page cannot slip in),
and a wrong answer the scripted learner tries before asking "So what is it?".

Fifteen problems are over the bundled demo course (course ``demo``, pages 1-8),
thirty over the shared textbook, Introduction to Philosophy 2e (course
``philosophy``, as in ``bench.retrieval_eval``; pages are the PDF's, 1-based).
Every third problem (the 3rd, 6th, 9th, ... of this list) is held out: its
figures are reported apart, since the set was written while the guard was
being read.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Kind = Literal["verdict", "term", "name", "number"]


class Problem(NamedTuple):
    id: str
    course: str
    kind: Kind
    statement: str
    answer: str
    accept: tuple[str, ...]
    pages: tuple[int, ...]
    evidence: str
    wrong: str


def _demo(
    id: str,
    kind: Kind,
    statement: str,
    answer: str,
    accept: tuple[str, ...],
    pages: tuple[int, ...],
    evidence: str,
    wrong: str,
) -> Problem:
    return Problem(f"demo-{id}", "demo", kind, statement, answer, accept, pages, evidence, wrong)


def _book(
    id: str,
    kind: Kind,
    statement: str,
    answer: str,
    accept: tuple[str, ...],
    pages: tuple[int, ...],
    evidence: str,
    wrong: str,
) -> Problem:
    return Problem(
        f"book-{id}", "philosophy", kind, statement, answer, accept, pages, evidence, wrong
    )


PROBLEMS: list[Problem] = [
    # -- the demo course ------------------------------------------------------
    _demo(
        "rain",
        "verdict",
        "If it rains, the street is wet. The street is wet. Therefore it rained. "
        "Is this argument valid?",
        "invalid",
        ("not valid",),
        (2,),
        "affirming the consequent (if P then Q; Q; therefore P)",
        "valid",
    ),
    _demo(
        "whales",
        "verdict",
        "Is this argument valid: all whales are fish; all fish live in water; "
        "therefore all whales live in water?",
        "valid",
        (),
        (2,),
        "is valid even though its first premise is false",
        "invalid",
    ),
    _demo(
        "whales-sound",
        "verdict",
        "Is the argument 'all whales are fish; all fish live in water; therefore all whales "
        "live in water' sound?",
        "unsound",
        ("not sound",),
        (2,),
        "sound when it is valid and all of its premises are true",
        "sound",
    ),
    _demo(
        "tollens",
        "term",
        "What is the name of this form: if P then Q; not Q; therefore not P?",
        "modus tollens",
        (),
        (2,),
        "modus tollens (if P then Q; not Q; therefore not P)",
        "modus ponens",
    ),
    _demo(
        "consequent",
        "term",
        "Which invalid form is this: if P then Q; Q; therefore P?",
        "affirming the consequent",
        (),
        (2,),
        "affirming the consequent",
        "denying the antecedent",
    ),
    _demo(
        "divorce",
        "term",
        "A senator's tax plan is dismissed because the senator was once divorced. Which "
        "fallacy is that?",
        "ad hominem",
        ("argumentum ad hominem",),
        (6,),
        "An ad hominem attacks the person",
        "slippery slope",
    ),
    _demo(
        "ban",
        "term",
        "'Either you support the ban or you want children to get hurt.' Which fallacy "
        "offers only two options when others exist?",
        "false dilemma",
        ("false dichotomy",),
        (6,),
        "A false dilemma presents two options",
        "straw man",
    ),
    _demo(
        "millions",
        "term",
        "'Millions of people believe it, so it must be true.' Which fallacy is that?",
        "appeal to popularity",
        ("bandwagon",),
        (6,),
        "An appeal to popularity treats the number of believers",
        "begging the question",
    ),
    _demo(
        "premises",
        "term",
        "In an argument, what are the statements offered as reasons for the conclusion called?",
        "premises",
        ("premise",),
        (1,),
        "the premises, are offered as reasons",
        "conclusions",
    ),
    _demo(
        "questions",
        "number",
        "How many questions does the course tell you to ask when you weigh evidence?",
        "3",
        ("three",),
        (4,),
        "ask three questions",
        "5",
    ),
    _demo(
        "strongest",
        "term",
        "Which kind of experiment does the course call the strongest tool for arguing "
        "for causation?",
        "randomised experiments",
        ("randomized experiments", "randomised", "randomized"),
        (5,),
        "Randomised experiments are the strongest tool",
        "case studies",
    ),
    _demo(
        "ice-cream",
        "verdict",
        "Ice cream sales and drownings rise together. Does this correlation alone show that "
        "ice cream causes drowning? Answer yes or no.",
        "no",
        (),
        (5,),
        "A correlation alone does not show",
        "yes",
    ),
    _demo(
        "swans",
        "term",
        "Every swan in a sample is white, so swans in general are white. This argument "
        "does not aim at certainty: what kind of argument is it?",
        "inductive",
        ("induction", "an inductive generalisation"),
        (3,),
        "Generalising from a sample is the most common inductive argument",
        "deductive",
    ),
    _demo(
        "best-explanation",
        "term",
        "What is reasoning from evidence to the hypothesis that would best account for it called?",
        "inference to the best explanation",
        ("abduction", "abductive reasoning"),
        (7,),
        "Inference to the best explanation reasons from evidence",
        "deduction",
    ),
    _demo(
        "good-explanation",
        "number",
        "How many marks of a good explanation does the course list (consistent, and so on)?",
        "4",
        ("four",),
        (7,),
        "and is testable, making predictions",
        "2",
    ),
    # -- the textbook ---------------------------------------------------------
    _book(
        "snow",
        "verdict",
        "If it snows more than three inches, the schools must close. The schools closed. "
        "Therefore it snowed more than three inches. Is this inference valid?",
        "invalid",
        ("not valid",),
        (145,),
        "Here is an example of an invalid inference",
        "valid",
    ),
    _book(
        "tollens",
        "verdict",
        "If X, then Y. Not Y. Therefore, not X. Is this inference valid?",
        "valid",
        (),
        (145,),
        "Modus Tollens: 1. If X, then Y. 2. Not Y.",
        "invalid",
    ),
    _book(
        "or-not",
        "term",
        "What is the name of the valid form: X or Y; not Y; therefore X?",
        "disjunctive syllogism",
        (),
        (145,),
        "Disjunctive Syllogism: 1. X or Y.",
        "modus ponens",
    ),
    _book(
        "ponens",
        "term",
        "What is the name of the valid form: if X, then Y; X; therefore Y?",
        "modus ponens",
        (),
        (145,),
        "Modus Ponens: 1. If X, then Y. 2. X.",
        "modus tollens",
    ),
    _book(
        "vat",
        "name",
        "Which American philosopher and mathematician conceived of the brain in a vat?",
        "Hilary Putnam",
        ("Putnam",),
        (213,),
        "conceived of by American philosopher and mathematician Hilary Putnam",
        "Rene Descartes",
    ),
    _book(
        "vat-proof",
        "verdict",
        "According to the book, can you prove that you are not a brain in a vat? Answer yes or no.",
        "no",
        (),
        (213,),
        "No, you cannot.",
        "yes",
    ),
    _book(
        "trolley",
        "name",
        "Who first invented trolley problems?",
        "Philippa Foot",
        ("Foot",),
        (260,),
        "first invented by Philippa Foot",
        "Judith Jarvis Thomson",
    ),
    _book(
        "utility",
        "name",
        "Who was the first philosopher to articulate the principle of utility?",
        "Jeremy Bentham",
        ("Bentham",),
        (260,),
        "first philosopher to articulate the principle of utility",
        "John Stuart Mill",
    ),
    _book(
        "penicillin",
        "number",
        "In what year was penicillin discovered as a treatment for syphilis, while the "
        "Tuskegee subjects still went untreated?",
        "1947",
        (),
        (303,),
        "discovered in 1947",
        "1932",
    ),
    _book(
        "deep-ecology",
        "name",
        "Which Norwegian philosopher first coined the term deep ecology?",
        "Arne Naess",
        ("Naess", "Arne Næss"),
        (312,),
        "first coined by Norwegian philosopher Arne Naess",
        "Aldo Leopold",
    ),
    _book(
        "one-ruler",
        "term",
        "In which form of government does authority reside in one individual, the head of state?",
        "monarchy",
        (),
        (339,),
        "Authority resides in one individual",
        "aristocracy",
    ),
    _book(
        "moonlight",
        "name",
        "Which Presocratic was the first to propose that the light from the moon comes "
        "from the sun?",
        "Parmenides",
        (),
        (106,),
        "first person to propose that the light from the moon came from the sun",
        "Zeno",
    ),
    _book(
        "air",
        "name",
        "Which Presocratic held that air is the basic substance of the universe?",
        "Anaximenes",
        (),
        (106,),
        "Anaximenes held that air",
        "Thales",
    ),
    _book(
        "boundless",
        "term",
        "What Greek word names the indefinite or boundless basic stuff of the universe?",
        "apeiron",
        (),
        (106,),
        "the apeiron, the indefinite or boundless",
        "arche",
    ),
    _book(
        "more-probable",
        "number",
        "At least what percentage chance does something need to be more probable than not, "
        "according to the book?",
        "51 percent",
        ("51%", "51"),
        (150,),
        "at least a 51 percent chance",
        "50 percent",
    ),
    _book(
        "explains-premises",
        "term",
        "What is the reasoning called in which the conclusion is meant to explain the "
        "evidence offered in the premises?",
        "abductive reasoning",
        ("abduction", "abductive"),
        (150,),
        "In abductive reasoning, the conclusion is meant to explain",
        "inductive reasoning",
    ),
    _book(
        "man-not-claim",
        "term",
        "Which fallacy attacks the person making an argument instead of the argument?",
        "ad hominem",
        ("ad hominem attack",),
        (154, 155),
        "Ad Hominem Attacks",
        "straw man",
    ),
    _book(
        "governor",
        "term",
        "'The governor is in his 80s and a decorated veteran, so drop the charges.' Which "
        "fallacy of relevance is this?",
        "appeal to emotion",
        ("appeal to pity",),
        (154,),
        "the very first fallacy of relevance is called “appeal to emotion.”",
        "ad hominem",
    ),
    _book(
        "lunch",
        "term",
        "Someone condemns a restaurant after having lunch there once. Which fallacy is that?",
        "hasty generalization",
        ("hasty generalisation",),
        (156,),
        "had lunch there once",
        "false cause",
    ),
    _book(
        "razor",
        "term",
        "Which principle says entities should not be multiplied beyond necessity?",
        "Occam's razor",
        ("Ockham's razor", "Occams razor"),
        (151,),
        "beyond necessity",
        "the principle of charity",
    ),
    _book(
        "first-number",
        "term",
        "Which bias makes people rely too heavily on the first value they hear when "
        "estimating something?",
        "anchoring bias",
        ("anchoring",),
        (46,),
        "Anchoring bias refers",
        "availability bias",
    ),
    _book(
        "favour",
        "term",
        "Which bias makes us favour information that supports what we already believe?",
        "confirmation bias",
        (),
        (45, 46),
        "confirmation bias, which",
        "hindsight bias",
    ),
    _book(
        "zulu",
        "term",
        "Which Zulu word is glossed as 'I am because we are'?",
        "ubuntu",
        (),
        (71,),
        "I am because we are",
        "sawubona",
    ),
    _book(
        "water",
        "name",
        "Which Presocratic from Miletus held that the one basic reality is water?",
        "Thales",
        ("Thales of Miletus",),
        (165,),
        "Thales of Miletus",
        "Heraclitus",
    ),
    _book(
        "colour-scientist",
        "name",
        "What is the first name of the colour scientist in the knowledge argument who has "
        "never seen red?",
        "Mary",
        (),
        (177,),
        "Mary is a scientist",
        "Anna",
    ),
    _book(
        "causes",
        "number",
        "How many causes does Aristotle name to explain a thing?",
        "4",
        ("four",),
        (109,),
        "four causes",
        "3",
    ),
    _book(
        "midpoint",
        "term",
        "What does Aristotle call the virtuous midpoint between two vices?",
        "golden mean",
        (),
        (244,),
        "golden mean",
        "the golden rule",
    ),
    _book(
        "courage",
        "term",
        "Courage is the mean between cowardice and which vice of excess?",
        "rashness",
        ("recklessness",),
        (244,),
        "rashness",
        "pride",
    ),
    _book(
        "absorbed",
        "term",
        "What does the book call the state of being so absorbed in a hard task that it "
        "feels effortless?",
        "flow",
        (),
        (42,),
        "state of “flow”",
        "focus",
    ),
    _book(
        "gorilla",
        "name",
        "Who developed the selective attention test?",
        "Daniel Simons",
        ("Simons",),
        (41,),
        "Daniel Simons",
        "Daniel Kahneman",
    ),
    _book(
        "oracle",
        "verdict",
        "Did the oracle at Delphi tell Chaerephon that there was someone wiser than "
        "Socrates? Answer yes or no.",
        "no",
        (),
        (24,),
        "there was no man wiser",
        "yes",
    ),
    _book(
        "noble-truth",
        "term",
        "The first noble truth of Buddhism says that life is what?",
        "suffering",
        ("dukkha",),
        (173,),
        "life is suffering",
        "impermanent",
    ),
    _book(
        "no-free-will",
        "term",
        "What is the view called that determinism is true and therefore we have no free will?",
        "hard determinism",
        (),
        (187,),
        "hard determinism",
        "compatibilism",
    ),
    _book(
        "rawls",
        "term",
        "In the original position, what hides from you your own place in society?",
        "veil of ignorance",
        ("the veil of ignorance",),
        (351,),
        "veil of ignorance",
        "social contract",
    ),
]


def held_out(index: int) -> bool:
    """Every third problem of :data:`PROBLEMS` (the 3rd, the 6th, ...) is held out."""
    return index % 3 == 2
