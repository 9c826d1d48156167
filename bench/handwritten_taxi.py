"""The taxi model written by hand with pandas + tf_keras: what the pipeline is measured against.

    python -m bench.handwritten_taxi --train rest.csv --test heldout.csv --out result.json

Same features, preprocessing and network as the pipeline's taxi spec (mean-imputed z-scores clipped at
+-5, vocabularies with a missing index and one OOV bucket, embeddings, dense 64-32 with dropout 0.1,
Adam 1e-3, batch 128, 10 epochs of 100 steps, early stopping on validation loss). It trains on 8/9 of
`--train` (validating on the rest, the pipeline's train : eval ratio) and scores AUC on `--test`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

NUMERIC = ["fare", "trip_miles", "trip_seconds", "pickup_latitude", "pickup_longitude",
           "dropoff_latitude", "dropoff_longitude"]  # fmt: skip
CATEGORICAL = ["payment_type", "company", "trip_start_hour", "trip_start_day", "trip_start_month",
               "pickup_community_area", "dropoff_community_area"]  # fmt: skip
LABEL = "big_tipper"


def fit_preprocessing(train: pd.DataFrame) -> dict:
    numeric = {c: (train[c].mean(), train[c].std(ddof=0) or 1.0) for c in NUMERIC}
    vocabularies = {c: train[c].dropna().astype(str).value_counts().index.tolist() for c in CATEGORICAL}
    return {"numeric": numeric, "vocabularies": vocabularies}


def transform(frame: pd.DataFrame, prep: dict) -> dict[str, np.ndarray]:
    inputs = {}
    for column, (mean, std) in prep["numeric"].items():
        inputs[column] = (((frame[column].fillna(mean) - mean) / std).clip(-5, 5)).to_numpy("float32")[
            :, None
        ]
    for column, vocabulary in prep["vocabularies"].items():
        index = {value: i + 1 for i, value in enumerate(vocabulary)}
        oov = len(vocabulary) + 1
        values = frame[column].astype(str).where(frame[column].notna(), None)
        inputs[column] = np.array([0 if v is None else index.get(v, oov) for v in values], "int64")[:, None]
    return inputs


def build(prep: dict) -> keras.Model:
    inputs, encoded = {}, []
    for column in NUMERIC:
        inputs[column] = keras.Input((1,), name=column)
        encoded.append(inputs[column])
    for column in CATEGORICAL:
        buckets = len(prep["vocabularies"][column]) + 2
        size = max(2, min(16, math.ceil(buckets**0.25 * 2)))
        inputs[column] = keras.Input((1,), name=column, dtype="int64")
        encoded.append(keras.layers.Flatten()(keras.layers.Embedding(buckets, size)(inputs[column])))
    hidden = keras.layers.Concatenate()(encoded)
    for units in (64, 32):
        hidden = keras.layers.Dropout(0.1)(keras.layers.Dense(units, activation="relu")(hidden))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", required=True, help="CSV to train and validate on")
    parser.add_argument("--test", required=True, help="CSV of held-out rows to score AUC on")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    keras.utils.set_random_seed(0)
    rest = pd.read_csv(args.train).sample(frac=1.0, random_state=0)
    test = pd.read_csv(args.test)
    validation_rows = len(rest) // 9  # train : eval = 8 : 1, as in the pipeline's split
    train, validation = rest.iloc[validation_rows:], rest.iloc[:validation_rows]
    prep = fit_preprocessing(train)
    model = build(prep)
    train_data = tf.data.Dataset.from_tensor_slices(
        (transform(train, prep), train[LABEL].to_numpy("float32"))
    )
    model.fit(
        train_data.shuffle(len(train), seed=0).repeat().batch(128),
        epochs=10,
        steps_per_epoch=100,
        validation_data=(transform(validation, prep), validation[LABEL].to_numpy("float32")),
        callbacks=[keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)],
        verbose=0,
    )
    scores = model.predict(transform(test, prep), batch_size=1024, verbose=0)[:, 0]
    result = {
        "auc": float(roc_auc_score(test[LABEL], scores)),
        "test_rows": len(test),
        "train_rows": len(train),
        "seconds_in_script": time.perf_counter() - started,
    }
    with open(args.out, "w") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
