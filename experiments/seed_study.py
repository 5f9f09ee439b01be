"""The seed document's claims, tested with data: four studies, one document (``results.md``).

``jaxdl reproduce`` (study ``seed``) loads this file from the checkout; the studies' code is
in ``seed_claims/`` beside it, outside the installed package.

``--quick`` shrinks every study to run in a few minutes on 2 CPU cores (for CI): its numbers
show the machinery works, not what the claims look like at scale.
"""

import math
import pathlib

from jaxdl.studies.common import shared_data_dir
from jaxdl.studies.record import StudyOptions
from seed_claims import depth, language, memory
from seed_claims import privacy as privacy_study

FULL = dict(
    depth=depth.DepthScale(seeds=3, blocks_per_stage=(1, 2, 4, 8),
                           epochs={"digits": 20, "mnist": 4}),
    memory=memory.MemoryScale(seeds=3, lengths=(10, 50, 100, 200), num_train=5000, epochs=8,
                              gradient_length=100),
    language=language.LanguageScale(seeds=3, variants=tuple(language.VARIANTS), mr_epochs=3,
                                    mr_max_len=60, digits_epochs=15),
    privacy=privacy_study.PrivacyScale(seeds=3, epsilons=(1.0, 3.0, 8.0, math.inf),
                                       epochs={"digits": 15, "mnist": 5}),
)
QUICK = dict(
    depth=depth.DepthScale(seeds=2, blocks_per_stage=(1, 2), epochs={"digits": 2}),
    memory=memory.MemoryScale(seeds=2, lengths=(10, 20), num_train=1000, epochs=2,
                              gradient_length=20),
    language=language.LanguageScale(seeds=2, variants=("LSTM (seed)", "RNN"), mr_epochs=1,
                                    mr_max_len=30, digits_epochs=2),
    privacy=privacy_study.PrivacyScale(seeds=2, epsilons=(3.0, math.inf), epochs={"digits": 1}),
)


def run(workdir: pathlib.Path, options: StudyOptions, log) -> tuple[str, str]:
  """The four studies (``Study.run``): the data note and their sections."""
  scales = QUICK if options.quick else FULL
  data_dir = shared_data_dir()
  sections = [depth.run(workdir, scales["depth"], data_dir, options.quick, log),
              memory.run(workdir, scales["memory"], log),
              language.run(workdir, scales["language"], data_dir, log),
              privacy_study.run(workdir, scales["privacy"], data_dir, options.quick, log)]
  intro = ("Data offline: scikit-learn's digits (1,797 8x8 images, resized to 28x28 for the "
           "CNNs), the 10,000-image MNIST **test** set from `../shared/data/mnist` split 80/20 "
           "into train/test by `data.split_seed` (the training images were not available), MR "
           "from `../shared/data/mr`, and the synthetic adding problem. Fashion-MNIST is not "
           "present offline and is not used.")
  return intro, "\n".join(sections)
