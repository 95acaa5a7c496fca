"""Learner questions over the bundled demo course (``knowledge/demo/demo.md``, 8 pages).

Made the same way as :mod:`bench.learner_questions` and with the same styles and split:
each question was written from the demo text in a learner's words, with the pages that
answer it and a phrase of the answer on the first of them; a ``not_covered`` question's
``evidence`` is its key term, which must appear nowhere in the course.
"""

from __future__ import annotations

from bench.learner_questions import LearnerQuestion

Q = LearnerQuestion

QUESTIONS: list[LearnerQuestion] = [
    Q(
        "how can i tell if someone is actually giving reasons or just describing stuff",
        (1,),
        "Not every persuasive passage is an argument",
        "learner",
    ),
    Q(
        "which little words tell me where the main point of an argument is",
        (1,),
        "indicator words",
        "learner",
    ),
    Q("how do i put an argument in standard form", (1,), "standard form", "informal"),
    Q("premises?", (1,), "the premises, are offered as reasons", "short"),
    Q("what makes an arguement valid", (2,), "A deductive argument is valid when", "typo"),
    Q(
        "can an argument work logically even if what it says is false",
        (2,),
        "valid even though its first premise is false",
        "learner",
    ),
    Q(
        "what's the difference between a valid argument and one that's actually right",
        (2,),
        "An argument is sound when",
        "learner",
    ),
    Q("modus tollens", (2,), "modus tollens", "short"),
    Q(
        '"if it rains the street is wet, the street is wet, so it rained" - what\'s wrong',
        (2,),
        "affirming the consequent",
        "learner",
    ),
    Q("denying the antecedant example", (2,), "denying the antecedent", "typo"),
    Q(
        "reasoning that only makes something likely, not certain",
        (3,),
        "does not aim at certainty",
        "learner",
    ),
    Q(
        "all the swans i've seen are white so all swans are white, good reasoning?",
        (3,),
        "every swan in a sample is white",
        "learner",
    ),
    Q("does sample size matter for generalising", (3,), "size of the sample", "informal"),
    Q(
        "why do scientists never say they've proven something",
        (3,),
        "support and confirmation rather than proof",
        "learner",
    ),
    Q("weak vs strong induction", (3,), "strong when its premises", "short"),
    Q("how do i know if a source is trustworthy", (4,), "how reliable is the source", "learner"),
    Q(
        "ten websites say the same thing, does that make it more true",
        (4,),
        "independent",
        "learner",
    ),
    Q(
        "my uncle's story about a miracle cure, is that good evidence",
        (4,),
        "Anecdotes are vivid but weak evidence",
        "learner",
    ),
    Q(
        "why are controlled experiments better than stories",
        (4,),
        "Controlled comparisons are stronger",
        "informal",
    ),
    Q("corelation vs causation", (5,), "Two things are correlated", "typo"),
    Q(
        "ice cream sales and drownings go up together, does one cause the other",
        (5,),
        "third factor",
        "learner",
    ),
    Q(
        "how can i show that one thing really causes another",
        (5,),
        "To argue for causation",
        "learner",
    ),
    Q("randomised experiments why", (5,), "Randomised experiments are the strongest tool", "short"),
    Q(
        "more of the cause gives more of the effect, what's that called",
        (5,),
        "dose-response",
        "learner",
    ),
    Q("attacking the person making the argument", (6,), "ad hominem", "learner"),
    Q("twisting someone's view so it's easier to beat", (6,), "straw man", "learner"),
    Q("what is a false dilemma", (6,), "false dilemma", "informal"),
    Q("lots of people believe it so it must be true?", (6,), "appeal to popularity", "learner"),
    Q("slipery slope fallacy", (6,), "slippery slope", "typo"),
    Q(
        "is it enough to just name the fallacy to win the argument",
        (6,),
        "Naming a fallacy is not enough",
        "learner",
    ),
    Q(
        "explaining why something happened vs arguing that it happened",
        (7,),
        "An explanation tells why",
        "learner",
    ),
    Q(
        "picking the story that fits the clues best, like a detective",
        (7,),
        "Inference to the best explanation",
        "learner",
    ),
    Q(
        "what makes an explanation good, simplicity?",
        (7,),
        "simple in that it assumes no more than it needs",
        "informal",
    ),
    Q(
        "how should i start my essay so the reader knows my point",
        (8,),
        "states its conclusion early",
        "learner",
    ),
    Q(
        "should i mention the other side in my essay",
        (8,),
        "Anticipate the strongest objection",
        "learner",
    ),
    Q("vague claims", (8,), "Prefer precise claims to vague ones", "short"),
    Q(
        "difference between deductive and inductive arguments",
        (2, 3),
        "A deductive argument is valid when",
        "span",
    ),
    Q("what did kant say about lying", (), "Kant", "not_covered"),
    Q("how do i cite a website in apa style", (), "APA", "not_covered"),
    Q("what is the trolley problem", (), "trolley", "not_covered"),
    Q("who was socrates", (), "Socrates", "not_covered"),
    Q("how do i solve a quadratic equation", (), "quadratic", "not_covered"),
    Q("when is the essay due", (), "due", "not_covered"),
]
