"""Questions over the shared textbook (Introduction to Philosophy 2e) and the pages answering them.

Each entry: the question, the pages where the answer is stated (the first is where it is
introduced), a phrase of the answer that must be on the first page (checked before every
run, so a wrong page number cannot slip in), and whether the question is paraphrased
(shares few words with the text) rather than worded like it.
"""

from __future__ import annotations

from typing import NamedTuple


class Question(NamedTuple):
    text: str
    pages: tuple[int, ...]
    evidence: str
    paraphrased: bool


QUESTIONS: list[Question] = [
    Question("What is the state of flow?", (42,), "state of “flow”", False),
    Question(
        "What happens when you get so absorbed in a hard task that it feels effortless?",
        (42,),
        "state of “flow”",
        True,
    ),
    Question("Who developed the selective attention test?", (41,), "Daniel Simons", False),
    Question(
        "Why does concentrating hard use up so much of the body's energy?",
        (41,),
        "glucose and oxygen",
        True,
    ),
    Question("What did the oracle at Delphi tell Chaerephon?", (24,), "no man wiser", False),
    Question(
        "What example of a natural body acting toward an end does Aquinas use?",
        (123,),
        "acorn gives rise",
        False,
    ),
    Question("What makes an inductive inference strong?", (150,), "strong inductive", False),
    Question(
        "When is it likely but not certain that a conclusion follows from evidence?",
        (150,),
        "probably true",
        True,
    ),
    Question(
        "What is the thought experiment about Mary the color scientist?",
        (177,),
        "Mary is a scientist",
        False,
    ),
    Question(
        "Would someone who knows every physical fact about colour learn something new on "
        "seeing red for the first time?",
        (177,),
        "every physical fact",
        True,
    ),
    Question("Who conceived of the brain in a vat?", (213,), "Hilary Putnam", False),
    Question(
        "What if scientists removed your brain overnight and kept it alive with nutrients?",
        (213,),
        "vat of nutrients",
        True,
    ),
    Question("What does it mean for something to have intrinsic value?", (231,), "own sake", False),
    Question(
        "Why did Aristotle think happiness is worth pursuing for itself alone?",
        (231,),
        "end in itself",
        True,
    ),
    Question(
        "How do we become just, according to the passage about builders and lyre players?",
        (276,),
        "builders by building",
        False,
    ),
    Question(
        "When was penicillin found to treat syphilis and did the Tuskegee subjects get it?",
        (303,),
        "1947",
        False,
    ),
    Question("Who coined the term deep ecology?", (312,), "Arne Naess", False),
    Question(
        "Which view holds that all living things matter in their own right, not only for "
        "human benefit?",
        (312,),
        "valuable in their own right",
        True,
    ),
    Question(
        "In which form of government does authority reside in one individual?",
        (339,),
        "Monarchy",
        False,
    ),
    Question(
        "What did Paulo Freire contribute to critical pedagogy?", (375,), "Paulo Freire", False
    ),
    Question(
        "What is the veil of ignorance in the original position?",
        (351,),
        "veil of ignorance",
        False,
    ),
    Question(
        "How should we choose principles of justice if we did not know whether we would be "
        "rich, talented or healthy?",
        (351,),
        "economic status",
        True,
    ),
    Question("Who first invented trolley problems?", (260,), "Philippa Foot", False),
    Question(
        "Who first explained that moonlight comes from the sun and the phases of the moon?",
        (106,),
        "light from the moon",
        True,
    ),
    Question("What is the golden mean in Aristotle's virtue ethics?", (244,), "golden mean", False),
    Question(
        "Is courage a midpoint between cowardice and rashness?",
        (244,),
        "rashness",
        True,
    ),
    Question("What is hard determinism?", (187,), "hard determinism", False),
    Question("What are Aristotle's four causes?", (109,), "four causes", False),
    Question(
        "What four questions explain what a thing is made of, its shape, what made it and "
        "its purpose?",
        (109,),
        "material cause",
        True,
    ),
    Question("What is the form of modus ponens?", (145,), "Modus Ponens", False),
    Question("What is an ad hominem attack?", (154,), "toward the man", False),
    Question(
        "Is it a fallacy to attack the person making an argument instead of the argument?",
        (154,),
        "Ad Hominem",
        True,
    ),
    Question("What is a hasty generalization?", (156,), "too little evidence", False),
    Question(
        "Is it bad reasoning to condemn a restaurant after eating there only once?",
        (156,),
        "had lunch there once",
        True,
    ),
    Question("What does Occam's razor say?", (151,), "simplest explanation", False),
    Question(
        "Why should entities not be multiplied beyond necessity?",
        (151,),
        "beyond necessity",
        False,
    ),
    Question("What is anchoring bias?", (46,), "Anchoring bias refers", False),
    Question(
        "Why do people stick to the first price they hear when guessing what something is worth?",
        (46,),
        "initial values",
        True,
    ),
    Question("What is confirmation bias?", (45,), "confirmation bias, which", False),
    Question(
        "Why do we favour information that supports what we already believe?",
        (45, 46),
        "prior beliefs",
        True,
    ),
    Question("What is the first noble truth of Buddhism?", (173,), "life is suffering", False),
    Question(
        "What are the six orthodox Hindu darshanas?",
        (79,),
        "Samkhya, Yoga, Nyaya",
        False,
    ),
    Question("What does the Zulu word ubuntu mean?", (71,), "I am because we are", False),
    Question(
        "Which African idea says a person is a person through other people's humanity?",
        (71,),
        "ubuntu",
        True,
    ),
    Question("What is the Euthyphro problem?", (236,), "Euthyphro problem", False),
    Question(
        "Is something good because God commands it, or does God command it because it is good?",
        (236,),
        "because God commands it",
        False,
    ),
    Question("What did Thales think the one real thing is?", (165,), "Thales of Miletus", False),
    Question(
        "Which early Greek thinkers said everything is water, air or fire?",
        (165,),
        "Anaximenes",
        True,
    ),
    Question(
        "How does Hinduism's principle of ahimsa apply to abortion?",
        (294,),
        "ahimsa",
        False,
    ),
    Question(
        "Why is the era of Mozi called the hundred schools period?",
        (330,),
        "hundred schools",
        False,
    ),
]
