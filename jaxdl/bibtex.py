"""``jaxdl cite``: BibTeX for jaxdl and for the papers behind a run's model, data and optimizer."""

import pathlib
import re
from typing import Any

from jaxdl.version import __version__
from jaxdl.data import sources as data_sources
from jaxdl.errors import JaxdlError
from jaxdl.models import BUILTIN
from jaxdl.optim import CONSTRAINTS, OPTIMIZERS, SCHEDULES
from jaxdl.parts import PYTHON_OBJECT
from jaxdl.training.run_folder import read_json

JAXDL = f"""@software{{jaxdl,
  title = {{jaxdl: a {{JAX}} functional research framework for {{CNNs}}, deep {{CNNs}}, {{RNNs}} and {{LSTMs}}}},
  author = {{{{The jaxdl developers}}}},
  year = {{2026}},
  version = {{{__version__}}},
  note = {{See CITATION.cff}}
}}"""

ENTRIES = {
    "jax2018github": """@software{jax2018github,
  author = {James Bradbury and Roy Frostig and Peter Hawkins and Matthew James Johnson and Chris Leary and Dougal Maclaurin and George Necula and Adam Paszke and Jake VanderPlas and Skye Wanderman-Milne and Qiao Zhang},
  title = {{JAX}: composable transformations of {P}ython+{N}um{P}y programs},
  url = {http://github.com/jax-ml/jax},
  year = {2018}
}""",
    "lecun1998gradient": """@article{lecun1998gradient,
  author = {Yann LeCun and L{\\'e}on Bottou and Yoshua Bengio and Patrick Haffner},
  title = {Gradient-based learning applied to document recognition},
  journal = {Proceedings of the IEEE},
  volume = {86}, number = {11}, pages = {2278--2324},
  year = {1998}
}""",
    "alpaydin1998optdigits": """@misc{alpaydin1998optdigits,
  author = {E. Alpaydin and C. Kaynak},
  title = {Optical Recognition of Handwritten Digits},
  howpublished = {UCI Machine Learning Repository},
  doi = {10.24432/C50P49},
  year = {1998}
}""",
    "xiao2017fashion": """@article{xiao2017fashion,
  author = {Han Xiao and Kashif Rasul and Roland Vollgraf},
  title = {Fashion-{MNIST}: a Novel Image Dataset for Benchmarking Machine Learning Algorithms},
  journal = {arXiv preprint arXiv:1708.07747},
  year = {2017}
}""",
    "krizhevsky2009learning": """@techreport{krizhevsky2009learning,
  author = {Alex Krizhevsky},
  title = {Learning Multiple Layers of Features from Tiny Images},
  institution = {University of Toronto},
  year = {2009}
}""",
    "simonyan2015very": """@inproceedings{simonyan2015very,
  author = {Karen Simonyan and Andrew Zisserman},
  title = {Very Deep Convolutional Networks for Large-Scale Image Recognition},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2015}
}""",
    "he2016deep": """@inproceedings{he2016deep,
  author = {Kaiming He and Xiangyu Zhang and Shaoqing Ren and Jian Sun},
  title = {Deep Residual Learning for Image Recognition},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages = {770--778},
  year = {2016}
}""",
    "ioffe2015batch": """@inproceedings{ioffe2015batch,
  author = {Sergey Ioffe and Christian Szegedy},
  title = {Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift},
  booktitle = {International Conference on Machine Learning (ICML)},
  pages = {448--456},
  year = {2015}
}""",
    "elman1990finding": """@article{elman1990finding,
  author = {Jeffrey L. Elman},
  title = {Finding Structure in Time},
  journal = {Cognitive Science},
  volume = {14}, number = {2}, pages = {179--211},
  year = {1990}
}""",
    "hochreiter1997long": """@article{hochreiter1997long,
  author = {Sepp Hochreiter and J{\\"u}rgen Schmidhuber},
  title = {Long Short-Term Memory},
  journal = {Neural Computation},
  volume = {9}, number = {8}, pages = {1735--1780},
  year = {1997}
}""",
    "cho2014learning": """@inproceedings{cho2014learning,
  author = {Kyunghyun Cho and Bart van Merri{\\"e}nboer and Caglar Gulcehre and Dzmitry Bahdanau and Fethi Bougares and Holger Schwenk and Yoshua Bengio},
  title = {Learning Phrase Representations using {RNN} Encoder--Decoder for Statistical Machine Translation},
  booktitle = {Conference on Empirical Methods in Natural Language Processing (EMNLP)},
  pages = {1724--1734},
  year = {2014}
}""",
    "le2015simple": """@article{le2015simple,
  author = {Quoc V. Le and Navdeep Jaitly and Geoffrey E. Hinton},
  title = {A Simple Way to Initialize Recurrent Networks of Rectified Linear Units},
  journal = {arXiv preprint arXiv:1504.00941},
  year = {2015}
}""",
    "maas2011learning": """@inproceedings{maas2011learning,
  author = {Andrew L. Maas and Raymond E. Daly and Peter T. Pham and Dan Huang and Andrew Y. Ng and Christopher Potts},
  title = {Learning Word Vectors for Sentiment Analysis},
  booktitle = {Annual Meeting of the Association for Computational Linguistics (ACL)},
  pages = {142--150},
  year = {2011}
}""",
    "pang2005seeing": """@inproceedings{pang2005seeing,
  author = {Bo Pang and Lillian Lee},
  title = {Seeing Stars: Exploiting Class Relationships for Sentiment Categorization with Respect to Rating Scales},
  booktitle = {Annual Meeting of the Association for Computational Linguistics (ACL)},
  pages = {115--124},
  year = {2005}
}""",
    "socher2013recursive": """@inproceedings{socher2013recursive,
  author = {Richard Socher and Alex Perelygin and Jean Wu and Jason Chuang and Christopher D. Manning and Andrew Ng and Christopher Potts},
  title = {Recursive Deep Models for Semantic Compositionality Over a Sentiment Treebank},
  booktitle = {Conference on Empirical Methods in Natural Language Processing (EMNLP)},
  pages = {1631--1642},
  year = {2013}
}""",
    "zhang2015character": """@inproceedings{zhang2015character,
  author = {Xiang Zhang and Junbo Zhao and Yann LeCun},
  title = {Character-level Convolutional Networks for Text Classification},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year = {2015}
}""",
    "kingma2015adam": """@inproceedings{kingma2015adam,
  author = {Diederik P. Kingma and Jimmy Ba},
  title = {Adam: A Method for Stochastic Optimization},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2015}
}""",
    "kim2014convolutional": """@inproceedings{kim2014convolutional,
  author = {Yoon Kim},
  title = {Convolutional Neural Networks for Sentence Classification},
  booktitle = {Conference on Empirical Methods in Natural Language Processing (EMNLP)},
  pages = {1746--1751},
  year = {2014}
}""",
    "mikolov2013distributed": """@inproceedings{mikolov2013distributed,
  author = {Tomas Mikolov and Ilya Sutskever and Kai Chen and Greg Corrado and Jeffrey Dean},
  title = {Distributed Representations of Words and Phrases and their Compositionality},
  booktitle = {Advances in Neural Information Processing Systems (NIPS)},
  pages = {3111--3119},
  year = {2013}
}""",
    "zeiler2012adadelta": """@article{zeiler2012adadelta,
  author = {Matthew D. Zeiler},
  title = {{ADADELTA}: An Adaptive Learning Rate Method},
  journal = {arXiv preprint arXiv:1212.5701},
  year = {2012}
}""",
    "duchi2011adaptive": """@article{duchi2011adaptive,
  author = {John Duchi and Elad Hazan and Yoram Singer},
  title = {Adaptive Subgradient Methods for Online Learning and Stochastic Optimization},
  journal = {Journal of Machine Learning Research},
  volume = {12},
  pages = {2121--2159},
  year = {2011}
}""",
    "srivastava2014dropout": """@article{srivastava2014dropout,
  author = {Nitish Srivastava and Geoffrey Hinton and Alex Krizhevsky and Ilya Sutskever and Ruslan Salakhutdinov},
  title = {Dropout: A Simple Way to Prevent Neural Networks from Overfitting},
  journal = {Journal of Machine Learning Research},
  volume = {15},
  number = {56},
  pages = {1929--1958},
  year = {2014}
}""",
    "loshchilov2017sgdr": """@inproceedings{loshchilov2017sgdr,
  author = {Ilya Loshchilov and Frank Hutter},
  title = {{SGDR}: Stochastic Gradient Descent with Warm Restarts},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2017}
}""",
    "loshchilov2019decoupled": """@inproceedings{loshchilov2019decoupled,
  author = {Ilya Loshchilov and Frank Hutter},
  title = {Decoupled Weight Decay Regularization},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2019}
}""",
}

def _data_source(config: dict[str, Any]) -> data_sources.DataSource | None:
  """The run's data source; None for a function given to the API (the researcher's data,
  which a later process cannot resolve without it and which carries no references)."""
  name = config["data"]["name"]
  if name.startswith(PYTHON_OBJECT):
    return None
  return data_sources.resolve(name, config.get("experiment", ""))


def keys_for(config: dict[str, Any]) -> list[str]:
  """The citation keys a run's config calls for, framework first (a user model has none)."""
  keys = ["jax2018github"]
  model = config["model"]
  part = BUILTIN.get(model["name"])
  if part is not None:
    keys += part.cite_keys({**part.fields, **model})
  source = _data_source(config)
  keys += source.cite_keys(config["data"]["name"]) if source else []
  keys += _optim_keys(config)
  return list(dict.fromkeys(k for k in keys if k))


def _optim_keys(config: dict[str, Any]) -> list[str]:
  """The papers behind the run's built-in optimizer, schedule and constraints (a user's have
  none here)."""
  keys = []
  if config["optim"]["name"] in OPTIMIZERS.names():
    keys += OPTIMIZERS.resolve(config["optim"]["name"]).cite_keys
  if config["optim"].get("schedule") in SCHEDULES.names():
    keys += SCHEDULES.resolve(config["optim"]["schedule"]).cite_keys
  for spec in config.get("constraints", {}).values():
    if spec.get("name") in CONSTRAINTS.names():
      keys += CONSTRAINTS.resolve(spec["name"]).cite_keys
  return keys


def _code_at(code: list[dict[str, Any]], roles: tuple[str, ...]) -> str:
  """Where the researcher's file of one of ``roles`` came from: its repository's commit (and
  whether it had uncommitted changes) and the file's hash, as the run recorded them."""
  entry = next((e for role in roles for e in code if e["role"] == role), None)
  if entry is None:
    return "code not recorded (a run made before jaxdl recorded it)"
  if entry.get("git_commit"):
    dirty = " with uncommitted changes" if entry.get("git_dirty") else ""
    return (f"{entry['name']} at commit {entry['git_commit']}{dirty}, sha256 "
            f"{entry['sha256'][:16]}")
  if entry.get("path") is None and not entry.get("sha256"):
    return f"{entry['name']}: no source kept, so the run cannot show its code"
  if entry.get("path") is None:
    return f"{entry['name']}, its source in the run's {entry['copy']}, sha256 {entry['sha256'][:16]}"
  return f"{entry['name']} (not in a git repository), sha256 {entry['sha256'][:16]}"


def user_entries(config: dict[str, Any], code: list[dict[str, Any]]) -> list[str]:
  """@misc entries naming the researcher's own model and data, and the code they ran:
  the commit of the repository holding it (``code``: provenance.json's ``user_code``)."""
  parts = []
  if config["model"]["name"] not in BUILTIN:
    parts.append(("usermodel", "user model", config["model"]["name"], ("model", "object")))
  source = _data_source(config)
  if source is None or source.user_data:
    parts.append(("userdata", "user data", config["data"]["name"], ("data", "object")))
  return [f"@misc{{{prefix}{re.sub(r'[^A-Za-z0-9]', '', name.rpartition(':')[2] or name)},\n"
          f"  title = {{{what} {name}}},\n"
          f"  note = {{{_code_at(code, (*roles, 'experiment'))}; trained with jaxdl "
          f"{__version__} (see the run's provenance.json)}}\n}}"
          for prefix, what, name, roles in parts]


def _runs(folder: pathlib.Path) -> list[tuple[dict[str, Any], pathlib.Path | None]]:
  """(config, run folder) of a run, or of every trained member of a sweep (else its base)."""
  if (folder / "config.json").exists():
    return [(read_json(folder / "config.json"), folder)]
  if (folder / "sweep.json").exists():
    sweep = read_json(folder / "sweep.json")
    members = [folder / m["name"] for m in sweep["members"]]
    runs = [(read_json(m / "config.json"), m) for m in members if (m / "config.json").exists()]
    return runs or [(sweep["base_config"], None)]
  raise JaxdlError(f"{folder} is neither a run folder (config.json) nor a sweep folder "
                   "(sweep.json)")


def cite(folder: str | pathlib.Path) -> str:
  """BibTeX for jaxdl and the papers behind a run's (or every sweep member's) model, data and
  optimizer; the researcher's own models are named with the commit they ran at."""
  keys, users = [], []
  for config, run in _runs(pathlib.Path(folder)):
    keys += keys_for(config)
    provenance = run / "provenance.json" if run else None
    code = (read_json(provenance).get("user_code", []) if provenance and provenance.exists()
            else [])
    users += user_entries(config, code)
    source = _data_source(config)
    users += source.references if source else ()
  entries = [ENTRIES[k] for k in dict.fromkeys(keys)]
  return "\n\n".join([JAXDL, *entries, *dict.fromkeys(users)]) + "\n"
