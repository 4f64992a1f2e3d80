"""Types and documentation of the compiled core (``xinsheng._native``)."""

from os import PathLike
from typing import Any, Callable, Literal, NotRequired, Optional, Sequence, TypedDict, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, "PathLike[str]"]

class Prediction(TypedDict):
    label: str
    """The most probable label."""
    score: float
    """Its calibrated probability, in [0, 1]."""
    probs: dict[str, float]
    """Every label's calibrated probability; they sum to 1."""

class TokenWeight(TypedDict):
    token: str
    """The token as the model reads it (normalised: ``"ＡＢＣ"`` is ``"abc"``)."""
    weight: float
    """How much the predicted label's probability falls when this token alone is replaced by
    ``<unk>`` (occlusion); positive supports the label, negative speaks against it."""
    start: NotRequired[int]
    """``text[start:end]`` is what the token was read from in the original text (``str``
    indices); absent only where the normalisation cannot be traced character by character."""
    end: NotRequired[int]

class Explanation(Prediction):
    tokens: list[TokenWeight]

class Finetuned(TypedDict):
    epochs_run: int
    added_labels: list[str]
    temperature: Optional[float]
    """The refitted calibration temperature (only with validation data)."""
    valid_accuracy: Optional[float]

class Progress(TypedDict, total=False):
    """What ``progress`` callbacks receive, once per epoch."""
    stage: str
    """``"epoch"`` (classification) or ``"pretrain"`` (language-model pretraining)."""
    epoch: int
    train_loss: float
    train_accuracy: float
    valid_accuracy: Optional[float]
    """Accuracy on the (first) validation file."""
    valid_macro_f1: Optional[float]
    valid_accuracies: list[float]
    """Accuracy on each validation file, in the order given."""
    selection_score: Optional[float]
    """The mean of ``valid_accuracies``: the epoch with the best one is kept."""
    best: bool
    loss: float

class Classifier:
    """A loaded model bundle: tokenizer, vocabulary, recurrent network, labels, calibration
    temperature. Methods release the GIL while the model runs; batches are spread over the
    machine's cores by the core's fused recurrence. Not safe to fine-tune from one thread while
    another predicts with the same object."""

    @staticmethod
    def load(path: Optional[_Path] = None) -> "Classifier":
        """Loads a bundle: a directory holding ``model.bpk`` or a ``.bpk`` file, as written by
        ``xinsheng train``/``finetune`` or :meth:`save`. ``None`` loads the default model packaged
        in the wheel (``models/default``, see its model card).

        Raises ``FileNotFoundError`` when the path does not exist, ``ValueError`` when the file
        is not a readable xinsheng bundle (truncated, corrupt, another format), ``OSError`` on
        other I/O failures."""

    @staticmethod
    def from_bytes(data: bytes, name: str = "bytes") -> "Classifier":
        """Loads a bundle from the bytes of a ``.bpk`` file (e.g. shipped to Ray actors);
        ``name`` names it in errors. Raises ``ValueError`` when they are not a bundle."""

    @property
    def labels(self) -> list[str]:
        """The label set, in the order of ``predict_proba``'s columns."""

    @property
    def manifest(self) -> dict:
        """The bundle's manifest: architecture, tokenizer, labels, temperature, validation
        metrics and how it was trained."""

    def tokens(self, text: str) -> list[str]:
        """The tokens the model reads for ``text`` (after NFKC normalisation and truncation)."""

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, in input order. Every text gets one, even ``""``.
        Raises ``TypeError`` when an item is not a ``str``."""

    def predict_proba(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Calibrated probabilities, ``float32`` array of shape ``(len(texts), len(labels))``;
        rows sum to 1 and equal ``xinsheng predict``'s ``probs`` for the same bundle."""

    def explain(self, text: str) -> Explanation:
        """The prediction for ``text`` and each token's weight for the predicted label."""

    def evaluate(self, texts: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
        """The model's figures on labelled texts, as ``xinsheng eval --json`` prints them (the
        core's one evaluation): ``accuracy``, ``macro_f1``, ``ece``, ``per_class``,
        ``confusion`` and, when the labels use fewer classes than the model knows,
        ``data_labels``. Raises ``ValueError`` for a label the model lacks (naming its
        position, 1-based) or no texts."""

    def finetune(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        valid_texts: Optional[Sequence[str]] = None,
        valid_labels: Optional[Sequence[str]] = None,
        add_labels: bool = False,
        progress: Optional[Callable[[Progress], None]] = None,
        epochs: int = 8,
        lr: float = 0.002,
        batch_size: int = 16,
        patience: int = 3,
        seed: int = 42,
        freeze: Literal["none", "embedding", "encoder"] = "none",
    ) -> Finetuned:
        """Continues training on labelled examples, in place, as ``xinsheng finetune`` does,
        with the core's options and defaults (the CLI's and the browser's; ``finetune_defaults()``
        lists them; ``None`` keeps a default). ``freeze`` is ``"none"``, ``"embedding"`` or
        ``"encoder"`` (only the head learns). With validation examples the best epoch is kept
        and the temperature refitted. An unknown option raises ``ValueError`` naming it.

        A label the model lacks raises ``ValueError`` unless ``add_labels=True`` (then it becomes
        a new class); so does a label differing from a known one only by case or width
        (``Positive`` beside ``positive``), texts and labels of different lengths, or options
        that cannot train (``epochs``, ``batch_size`` or ``patience`` 0, an ``lr`` that is not a
        finite number above 0: the CLI's check and messages). On an error the model is
        unchanged."""

    def save(self, path: _Path, precision: str = "f16") -> str:
        """Writes the bundle (``.bpk`` file, or a new, empty or model directory that gets
        ``model.bpk``) and returns the file written; an existing file or a directory of other
        files raises ``ValueError``. ``precision`` is ``"f16"`` (half the size) or ``"f32"``."""

def train(
    data: Union[_Path, Sequence[_Path]],
    out: Optional[_Path] = None,
    *,
    valid: Union[_Path, Sequence[_Path], None] = None,
    teacher: Sequence[_Path] = (),
    precision: Literal["f16", "f32"] = "f16",
    progress: Optional[Callable[[Progress], None]] = None,
    arch: Literal["rnn", "lstm", "gru"] = "lstm",
    bidirectional: bool = False,
    tokenizer: Literal["char", "word"] = "char",
    embed_dim: int = 128,
    hidden: int = 128,
    layers: int = 1,
    dropout: float = 0.3,
    max_len: int = 160,
    vocab_size: int = 6000,
    bigrams: int = 0,
    bigram_dim: int = 64,
    min_freq: int = 2,
    epochs: int = 10,
    pretrain_epochs: int = 0,
    lm_vocab: int = 3000,
    batch_size: int = 64,
    lr: float = 0.002,
    patience: int = 3,
    seed: int = 42,
    pooling: Literal["mean-max", "mean-max-last"] = "mean-max",
    distill_weight: Optional[float] = None,
    temperature: Optional[float] = None,
    encoding: str = "auto",
    format: Optional[Literal["txt", "tsv", "csv", "jsonl"]] = None,
    text_column: Optional[str] = None,
    label_column: Optional[str] = None,
    label_map: Optional[str] = None,
) -> Classifier:
    """Trains a model as ``xinsheng train`` does, with the same options and defaults (the
    core's, listed by ``train_defaults()``; ``None`` keeps a default), and returns the trained
    classifier; with ``out`` the bundle is also written there. An unknown option raises
    ``ValueError`` naming it and listing the others.

    ``data`` is one labelled file or several (.tsv, .csv, .jsonl with a text and a label
    column; ``format`` — ``"tsv"``, ``"csv"`` or ``"jsonl"`` — reads files whose extension
    says otherwise, as ``--format`` does; any other extension is refused); ``valid`` (one path or several, as the CLI's repeatable ``--valid``) selects the best epoch by the mean of the files' accuracies and fits the calibration temperature on all of them. One-line
    reports go to the ``xinsheng`` logger (INFO), per-epoch figures to ``progress``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for malformed data
    (the message names the file and line), fewer than two labels, or options that cannot
    train (an ``lr`` that is not a finite number above 0, ``epochs`` 0 …) and an ``out`` that
    cannot be written (as for ``Classifier.save``), both checked before the first epoch, in
    the CLI's words."""

def train_defaults() -> dict[str, Any]:
    """``train``'s options and their defaults, the core's (what ``xinsheng train --help``
    shows), without the file lists ``data``, ``valid`` and ``teacher``."""

def finetune_defaults() -> dict[str, Any]:
    """``Classifier.finetune``'s options and their defaults, the core's (the CLI's and the
    browser's)."""
