// Runs a TF.js graph model in Node with @tensorflow/tfjs (pure JavaScript, no native binary).
//
//   node tfjs_predict.mjs <model-dir> <request.json> <response.json>
//
// request:  {"inputs": {feature: [value, ...]}, "latency_rows": N}  (null marks a missing number)
// response: {"predictions": [[...], ...], "predict_ms": wall time of predicting every row in batches
//            of 256, "latency_ms": [one single-row call each, N of them]}
//
// Models with lookup tables need `modelInitializer` and `initializerSignature` passed through
// the IOHandler; tf.io's file loaders are browser-only, so this reads the files itself.
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';

function fileHandler(modelDir) {
  return {
    load: async () => {
      const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'model.json'), 'utf8'));
      const buffers = [];
      const weightSpecs = [];
      for (const group of manifest.weightsManifest) {
        for (const shard of group.paths) buffers.push(fs.readFileSync(path.join(modelDir, shard)));
        weightSpecs.push(...group.weights);
      }
      const weights = Buffer.concat(buffers);
      return {
        modelTopology: manifest.modelTopology,
        format: manifest.format,
        generatedBy: manifest.generatedBy,
        convertedBy: manifest.convertedBy,
        signature: manifest.signature,
        userDefinedMetadata: manifest.userDefinedMetadata,
        modelInitializer: manifest.modelInitializer,
        initializerSignature: manifest.initializerSignature,
        weightSpecs,
        weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
      };
    },
  };
}

function inputTensors(model, columns, start, end) {
  const tensors = {};
  for (const [name, info] of Object.entries(model.signature.inputs)) {
    if (info.dtype === 'DT_RESOURCE') continue;
    const feature = name.split(':')[0];
    if (!(feature in columns)) throw new Error(`request has no values for input '${feature}'`);
    const values = columns[feature].slice(start, end);
    if (info.dtype === 'DT_STRING') {
      tensors[name] = tf.tensor(values.map((v) => (v === null ? '' : String(v))), [values.length, 1], 'string');
    } else if (info.dtype === 'DT_INT32') { // a date-time's Unix seconds
      tensors[name] = tf.tensor(values, [values.length, 1], 'int32');
    } else {
      tensors[name] = tf.tensor(values.map((v) => (v === null ? NaN : v)), [values.length, 1], 'float32');
    }
  }
  return tensors;
}

async function predict(model, columns, start, end) {
  const output = model.signature.outputs.predictions || Object.values(model.signature.outputs)[0];
  const inputs = inputTensors(model, columns, start, end);
  const executed = await model.executeAsync(inputs, [output.name]);
  const result = Array.isArray(executed) ? executed[0] : executed;
  const values = await result.array();
  tf.dispose([result, ...Object.values(inputs)]);
  return values;
}

async function main() {
  const [modelDir, requestFile, responseFile] = process.argv.slice(2);
  if (!responseFile) throw new Error('usage: node tfjs_predict.mjs <model-dir> <request.json> <response.json>');
  const request = JSON.parse(fs.readFileSync(requestFile, 'utf8'));
  const model = await tf.loadGraphModel(fileHandler(modelDir));
  const rows = Object.values(request.inputs)[0].length;
  const predictions = [];
  const batchStarted = process.hrtime.bigint();
  for (let start = 0; start < rows; start += 256) {
    predictions.push(...(await predict(model, request.inputs, start, Math.min(rows, start + 256))));
  }
  const predictMs = Number(process.hrtime.bigint() - batchStarted) / 1e6;
  const latency = [];
  for (let i = 0; i < (request.latency_rows || 0); i++) {
    const started = process.hrtime.bigint();
    await predict(model, request.inputs, i % rows, (i % rows) + 1);
    latency.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  fs.writeFileSync(responseFile, JSON.stringify({ backend: tf.getBackend(), predictions, predict_ms: predictMs, latency_ms: latency }));
}

main().catch((error) => {
  console.error(`tfjs_predict: ${error.message}`);
  process.exit(1);
});
