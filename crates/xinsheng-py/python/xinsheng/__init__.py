"""心声 xinsheng: Chinese sentiment classification with recurrent networks, from Python.

The model, tokenizer and probabilities are the Rust core's (``xinsheng-core``), the same as the
``xinsheng`` command line and the browser engine, bit for bit::

    import xinsheng
    clf = xinsheng.Classifier.load()          # the packaged default model
    clf.predict(["质量很好，物流也快", "不差"])   # [{'label': 'positive', 'score': 0.96, 'probs': {...}}, ...]
    clf.predict_proba(texts)                  # numpy array, shape (len(texts), len(clf.labels))

``python -m xinsheng.ray_predict`` classifies Parquet/JSONL/CSV archives on a Ray cluster.
See ``_native.pyi`` for every signature, shape and error.
"""

from ._native import Classifier, __version__, train

__all__ = ["Classifier", "train", "__version__"]
