"""心声 xinsheng: Chinese sentiment classification with recurrent networks, from Python.

The model, tokenizer and probabilities are the Rust core's (``xinsheng-core``), the same as the
``xinsheng`` command line and the browser engine, bit for bit::

    import xinsheng
    clf = xinsheng.Classifier.load()          # the packaged default model
    clf.predict(["质量很好，物流也快", "不差"])   # [{'label': 'positive', 'score': 0.96, 'probs': {...}}, ...]
    clf.predict_proba(texts)                  # numpy array, shape (len(texts), len(clf.labels))

``xinsheng.train_defaults()`` and ``xinsheng.finetune_defaults()`` list the options ``train`` and
``Classifier.finetune`` take, with the core's defaults (the CLI's and the browser's).
``python -m xinsheng.ray_predict`` classifies Parquet/JSONL/CSV archives on a Ray cluster.
See ``_native.pyi`` for every signature, shape and error.
"""

from ._native import Classifier, __version__, finetune_defaults, train, train_defaults

__all__ = ["Classifier", "train", "train_defaults", "finetune_defaults", "__version__"]
