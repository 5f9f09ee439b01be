"""Studies: experiments run into one folder and a document made from their run folders
(``jaxdl reproduce NAME``). Built in: ``seed`` (the seed document's claims) and ``kim2014``
(Kim 2014, Table 2); both studies' code lives beside their recipes in ``experiments/``, out
of the installed package. A user's study is a ``Study`` at an import path."""

from jaxdl.studies.record import STUDIES, Study, StudyOptions, checkout_study, resolve


STUDIES.register("seed", Study(
    "seed", "The seed's claims, tested with data", "results.md",
    checkout_study("seed_study.py", "run"),
    description="the seed document's claims: depth, memory, language, privacy (results.md)"))
STUDIES.register("kim2014", Study(
    "kim2014", "Kim (2014), Table 2, CNN-rand, reproduced with jaxdl", "kim2014.md",
    checkout_study("kim2014_study.py", "run"), ("seeds", "split_seeds", "datasets"),
    description="Kim (2014) Table 2, CNN-rand, on seven sentence sets (kim2014.md)"))

__all__ = ["STUDIES", "Study", "StudyOptions", "checkout_study", "resolve"]
