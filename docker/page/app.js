// Loads the TF.js model in service for ?model=<name> (default: taxi) and predicts from a form of the
// raw features. Everything comes from this server: serving/<model>/current.json names the version in
// service and its targets; the graph model's signature names the features and their types.
'use strict';

const params = new URLSearchParams(window.location.search);
const modelName = params.get('model') || 'taxi';
const preferred = params.get('variant') || 'float32';
const statusLine = document.getElementById('status');
const form = document.getElementById('features');
const output = document.getElementById('prediction');

function featureInputs(model) {
  return Object.entries(model.signature.inputs)
    .filter(([, info]) => info.dtype !== 'DT_RESOURCE')
    .map(([name, info]) => ({
      tensorName: name,
      feature: name.split(':')[0],
      text: info.dtype === 'DT_STRING',
      datetime: info.dtype === 'DT_INT32',
    }))
    .sort((a, b) => a.feature.localeCompare(b.feature));
}

// A date-time field takes ISO-8601 text (read as the wall-clock time it writes) or Unix seconds; the
// model takes int32 Unix seconds, the lowest int32 for a missing value (components/modules/datetimes.py).
const MISSING_SECONDS = -(2 ** 31);

function unixSeconds(text) {
  if (text === '') return MISSING_SECONDS;
  if (/^-?\d+(\.\d*)?$/.test(text)) return Math.floor(Number(text));
  const found = text.match(/^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?/);
  if (!found) throw new Error(`'${text}' is not an ISO-8601 date-time or Unix seconds`);
  const [year, month, day, hour, minute, second] = found.slice(1).map((part) => Number(part || 0));
  return Date.UTC(year, month - 1, day, hour, minute, second) / 1000;
}

function buildForm(features) {
  for (const { feature, text, datetime } of features) {
    const label = document.createElement('label');
    label.htmlFor = feature;
    label.textContent = feature;
    const input = document.createElement('input');
    input.id = feature;
    input.name = feature;
    input.type = text || datetime ? 'text' : 'number';
    if (datetime) input.placeholder = '2016-05-16T19:45 or Unix seconds';
    if (!text && !datetime) input.step = 'any';
    form.append(label, input);
  }
  const button = document.createElement('button');
  button.type = 'submit';
  button.id = 'predict';
  button.textContent = 'Predict';
  form.append(button);
  form.hidden = false;
}

async function predict(model, features) {
  const inputs = {};
  for (const { tensorName, feature, text, datetime } of features) {
    const raw = document.getElementById(feature).value.trim();
    if (datetime) inputs[tensorName] = tf.tensor([unixSeconds(raw)], [1, 1], 'int32');
    else if (text) inputs[tensorName] = tf.tensor([raw], [1, 1], 'string');
    else inputs[tensorName] = tf.tensor([raw === '' ? NaN : Number(raw)], [1, 1], 'float32');
  }
  const outputInfo = model.signature.outputs.predictions || Object.values(model.signature.outputs)[0];
  const executed = await model.executeAsync(inputs, [outputInfo.name]);
  const result = Array.isArray(executed) ? executed[0] : executed;
  const values = Array.from(await result.data());
  tf.dispose([result, ...Object.values(inputs)]);
  return values;
}

// The prediction in the user's classes, from the task and class names the manifest lists: binary ->
// one probability, of the positive (second) class; multiclass -> one per class, the most probable
// named first; multilabel -> one per label; regression -> the value.
function describe(values, task, classes) {
  if (!classes || task === 'regression') return { text: values.map((v) => v.toFixed(6)).join(', ') };
  const scores = task === 'binary' ? [1 - values[0], values[0]] : values;
  const listed = classes.map((name, i) => `${name} ${scores[i].toFixed(4)}`).join(', ');
  if (task === 'multilabel') return { text: listed };
  const best = scores.indexOf(Math.max(...scores));
  return { text: `${classes[best]} (${listed})`, predicted: classes[best] };
}

async function main() {
  document.getElementById('model-name').textContent = modelName;
  const current = await (await fetch(`serving/${modelName}/current.json`, { cache: 'no-store' })).json();
  const tfjsTargets = (current.manifest.targets || []).filter((t) => t.target === 'tfjs' && t.pushed);
  if (tfjsTargets.length === 0) throw new Error(`version ${current.version} has no TF.js model`);
  const target = tfjsTargets.find((t) => t.variant === preferred) || tfjsTargets[0];
  const url = `serving/${modelName}/${current.version}/${target.path}/model.json`;
  const model = await tf.loadGraphModel(url);
  const features = featureInputs(model);
  buildForm(features);
  statusLine.textContent = `Version ${current.version}, TF.js ${target.variant} ` +
    `(${(target.size_bytes / 1e3).toFixed(0)} kB, test ${current.manifest.metric} ${target.metric.toFixed(4)}).`;
  statusLine.dataset.version = current.version;
  statusLine.dataset.variant = target.variant;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    output.classList.remove('error');
    try {
      const values = await predict(model, features);
      const shown = describe(values, current.manifest.task, current.manifest.classes);
      output.dataset.scores = JSON.stringify(values);
      output.dataset.predictedClass = shown.predicted || '';
      output.value = shown.text;
    } catch (error) {
      output.classList.add('error');
      output.value = `error: ${error.message}`;
    }
  });
}

main().catch((error) => {
  statusLine.classList.add('error');
  statusLine.textContent = `Cannot load the model: ${error.message}`;
});
