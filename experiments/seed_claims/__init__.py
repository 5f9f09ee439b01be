"""The seed document's four studies (depth, memory, language, privacy): their sweeps, tables,
figures and verdicts. Run by ``experiments/seed_study.py`` (``jaxdl reproduce seed``)."""
