"""The shipped architecture in TensorFlow/Keras, on the batches the Rust benchmark used.

Run by scripts/bench-keras (which installs tensorflow-cpu into a venv and runs the Rust
benchmark first); reads the JSON that `XINSHENG_BENCH_DUMP` makes the Rust benchmark write and
measures the same three figures, then prints both side by side.

    python scripts/bench_keras.py DUMP.json
"""

import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

BATCH = 64
INFERENCE_BATCH = 64  # xinsheng's inference batch (classifier::INFERENCE_BATCH)


class MaskedMeanMax(layers.Layer):
    """Mean and max over the real steps, concatenated: xinsheng's pooling."""

    supports_masking = True

    def call(self, x, mask=None):
        m = ops.expand_dims(ops.cast(mask, x.dtype), -1)
        mean = ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)
        # Outputs lie in (-1, 1): -10 on padded steps never wins the max.
        top = ops.max(x * m + (m - 1.0) * 10.0, axis=1)
        return ops.concatenate([mean, top], axis=-1)

    def compute_mask(self, x, mask=None):
        return None


def model_for(config):
    cell = {"gru": layers.GRU, "lstm": layers.LSTM, "rnn": layers.SimpleRNN}[config["arch"]]
    tokens = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(config["vocab_size"], config["embed_dim"], mask_zero=True)(tokens)
    x = layers.Dropout(config["dropout"])(x)
    for _ in range(config["layers"]):
        rnn = cell(config["hidden"], return_sequences=True)
        x = (layers.Bidirectional(rnn) if config["bidirectional"] else rnn)(x)
    x = MaskedMeanMax()(x)
    x = layers.Dropout(config["dropout"])(x)
    logits = layers.Dense(config["num_classes"])(x)
    model = keras.Model(tokens, logits)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3, clipnorm=5.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def padded(sequences):
    """A batch padded to its longest sequence, as xinsheng pads."""
    width = max(len(s) for s in sequences)
    out = np.zeros((len(sequences), width), dtype=np.int32)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return out


def main():
    dump = json.load(open(sys.argv[1]))
    config = dump["config"]
    train_ids, labels, valid_ids = dump["train_ids"], np.array(dump["train_labels"]), dump["valid_ids"]
    model = model_for(config)
    rng = np.random.default_rng(0)

    def epoch():
        order = rng.permutation(len(train_ids))
        start = time.perf_counter()
        for b in range(0, len(order), BATCH):
            idx = order[b : b + BATCH]
            model.train_on_batch(padded([train_ids[i] for i in idx]), labels[idx])
        return len(order) / (time.perf_counter() - start)

    # Inference batches as xinsheng makes them: sorted by length, 64 at a time.
    by_length = sorted(valid_ids, key=len)
    valid_batches = [padded(by_length[b : b + INFERENCE_BATCH]) for b in range(0, len(by_length), INFERENCE_BATCH)]
    singles = [padded([s]) for s in valid_ids[:200]]
    infer = tf.function(lambda x: tf.nn.softmax(model(x, training=False)), reduce_retracing=True)

    def batched():
        start = time.perf_counter()
        for x in valid_batches:
            infer(x).numpy()
        return len(valid_ids) / (time.perf_counter() - start)

    def single():
        start = time.perf_counter()
        for x in singles:
            infer(x).numpy()
        return len(singles) / (time.perf_counter() - start)

    # One untimed pass of each traces the graphs (one per input shape, then relaxed).
    epoch(), batched(), single()
    figures = {
        "train": statistics.median(epoch() for _ in range(3)),
        "batched": statistics.median(batched() for _ in range(3)),
        "single": statistics.median(single() for _ in range(3)),
    }
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs")
    print()
    print("| measure | Keras | xinsheng reference cell | xinsheng fused | fused / Keras |")
    print("|---|---|---|---|---|")
    names = {
        "train": "training, batch 64 (samples/s)",
        "batched": "inference, batches of 64 (reviews/s)",
        "single": "inference, one review at a time (reviews/s)",
    }
    for key, name in names.items():
        keras_rate, reference, fused = figures[key], dump["reference"][key], dump["fused"][key]
        print(f"| {name} | {keras_rate:.0f} | {reference:.0f} | {fused:.0f} | {fused / keras_rate:.2f}x |")


if __name__ == "__main__":
    main()
