// Loads the TF.js model in service for ?model=<name> (default: taxi) and predicts from a form of the
// raw features. Everything comes from this server: serving/<model>/current.json names the version in
// service and its targets; page.json beside the graph model (written by the ModelExporter) lists the
// features in the spec's order with their kinds, vocabularies and typical values, a few real test rows
// and how to word the answer. A version pushed before page.json existed gets a plain form built from
// the graph model's signature.
'use strict';

const params = new URLSearchParams(window.location.search);
const modelName = params.get('model') || 'taxi';
const preferred = params.get('variant') || 'float32';
const statusLine = document.getElementById('status');
const form = document.getElementById('features');
const output = document.getElementById('prediction');
const detail = document.getElementById('detail');
const rowNote = document.getElementById('row-note');

// A date-time field takes ISO-8601 text (read as the wall-clock time it writes) or Unix seconds; the
// model takes int32 Unix seconds, the lowest int32 for a missing value (components/modules/datetimes.py).
const MISSING_SECONDS = -(2 ** 31);
const KIND_OF_DTYPE = { DT_STRING: 'categorical', DT_INT32: 'datetime' };

function unixSeconds(text) {
  if (text === '') return MISSING_SECONDS;
  if (/^-?\d+(\.\d*)?$/.test(text)) return Math.floor(Number(text));
  const found = text.match(/^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?/);
  if (!found) throw new Error(`'${text}' is not an ISO-8601 date-time or Unix seconds`);
  const [year, month, day, hour, minute, second] = found.slice(1).map((part) => Number(part || 0));
  return Date.UTC(year, month - 1, day, hour, minute, second) / 1000;
}

// The model's inputs, in page.json's order (the spec's) with its metadata; inputs page.json does not
// list (or every input, without page.json) follow in alphabetical order.
function featureInputs(model, page) {
  const described = new Map(((page && page.features) || []).map((f) => [f.input, f]));
  const inputs = Object.entries(model.signature.inputs)
    .filter(([, info]) => info.dtype !== 'DT_RESOURCE')
    .map(([tensorName, info]) => {
      const input = tensorName.split(':')[0];
      const known = described.get(input) || {};
      return {
        column: input,
        kind: KIND_OF_DTYPE[info.dtype] || 'numeric',
        ...known,
        input,
        tensorName,
      };
    });
  const rank = (f) => (described.has(f.input) ? [...described.keys()].indexOf(f.input) : described.size);
  return inputs.sort((a, b) => rank(a) - rank(b) || a.column.localeCompare(b.column));
}

function option(value, text) {
  const element = document.createElement('option');
  element.value = value;
  element.textContent = text;
  return element;
}

function field(feature) {
  const { input, kind, vocabulary, typical } = feature;
  if (kind === 'categorical' && vocabulary && vocabulary.length) {
    const select = document.createElement('select');
    select.append(option('', '(missing)'), ...vocabulary.map((value) => option(value, value)));
    return Object.assign(select, { id: input, name: input });
  }
  const box = Object.assign(document.createElement('input'), { id: input, name: input });
  box.type = kind === 'numeric' ? 'number' : 'text';
  if (kind === 'numeric') box.step = 'any';
  if (typical !== undefined && typical !== null && typical !== '') {
    box.placeholder = `e.g. ${typical}`;
    box.title = `typical value (training median): ${typical}; empty = missing`;
  } else if (kind === 'datetime') {
    box.placeholder = '2016-05-16T19:45 or Unix seconds';
  }
  return box;
}

function hint(feature) {
  const { kind, vocabulary, typical } = feature;
  const text = document.createElement('span');
  text.className = 'hint';
  if (kind === 'categorical' && vocabulary && vocabulary.length) {
    text.textContent = `${vocabulary.length} values; most common: ${typical}`;
  } else if (typical !== undefined && typical !== null) {
    text.textContent = kind === 'datetime' ? `date-time; median ${typical}` : `median ${typical}`;
  } else if (kind === 'datetime') text.textContent = 'date-time';
  return text;
}

function buildForm(features, page) {
  for (const feature of features) {
    const label = document.createElement('label');
    label.htmlFor = feature.input;
    label.textContent = feature.column;
    const holder = document.createElement('div');
    holder.className = 'field';
    holder.append(field(feature), hint(feature));
    form.append(label, holder);
  }
  const buttons = document.createElement('div');
  buttons.className = 'buttons';
  const predictButton = Object.assign(document.createElement('button'), { type: 'submit', id: 'predict' });
  predictButton.textContent = 'Predict';
  buttons.append(predictButton);
  if (page && page.test_rows && page.test_rows.length) {
    const fill = Object.assign(document.createElement('button'), { type: 'button', id: 'fill' });
    fill.textContent = 'Fill with a real test row';
    fill.title = `one of ${page.test_rows.length} rows of the test split, which the model never trained on`;
    buttons.append(fill);
  }
  form.append(buttons);
  form.hidden = false;
}

// Sets one field; a category the select list lacks (one the training data never had) is added to it.
function setField(feature, value) {
  const element = document.getElementById(feature.input);
  const text = value === null || value === undefined ? '' : String(value);
  if (element.tagName === 'SELECT' && ![...element.options].some((o) => o.value === text)) {
    element.append(option(text, `${text} (not seen in training)`));
  }
  element.value = text;
}

function fillRow(features, page, index) {
  const row = page.test_rows[index];
  for (const feature of features) setField(feature, row.values[feature.input]);
  const actual = Object.entries(row.actual || {})
    .map(([label, value]) => `${label}: ${spokenClass(page, value)}`)
    .join(', ');
  rowNote.textContent = `Test row ${index + 1} of ${page.test_rows.length}` +
    (actual ? `; what really happened: ${actual}.` : '.');
  rowNote.dataset.row = String(index);
}

async function predict(model, features) {
  const inputs = {};
  for (const { tensorName, input, kind } of features) {
    const raw = document.getElementById(input).value.trim();
    if (kind === 'datetime') inputs[tensorName] = tf.tensor([unixSeconds(raw)], [1, 1], 'int32');
    else if (kind === 'categorical') inputs[tensorName] = tf.tensor([raw], [1, 1], 'string');
    else inputs[tensorName] = tf.tensor([raw === '' ? NaN : Number(raw)], [1, 1], 'float32');
  }
  const outputInfo = model.signature.outputs.predictions || Object.values(model.signature.outputs)[0];
  const executed = await model.executeAsync(inputs, [outputInfo.name]);
  const result = Array.isArray(executed) ? executed[0] : executed;
  const values = Array.from(await result.data());
  tf.dispose([result, ...Object.values(inputs)]);
  return values;
}

function percent(probability) {
  if (probability < 0.01) return 'under 1%';
  if (probability > 0.99) return 'over 99%';
  return `${Math.round(probability * 100)}%`;
}

function number(value) {
  return Number(value.toPrecision(4)).toLocaleString('en-US', { maximumFractionDigits: 4 });
}

// A class as the page words it: "yes"/"no" for a 0/1 label, else its name as the data writes it.
function spokenClass(page, name) {
  const classes = page.classes || [];
  const labels = page.class_labels || classes;
  const index = classes.indexOf(name);
  return index >= 0 ? labels[index] : name;
}

// The answer in the task's words, from page.json (or, for older versions, the manifest's task and
// class names): binary -> the predicted class and the probability of the positive (second) one;
// multiclass -> the most probable class with its probability, the runners-up in `detail`;
// multilabel -> yes/no per label; regression -> the value.
function describe(values, page) {
  const { task, classes } = page;
  const label = (page.labels || ['prediction']).join(', ');
  if (task === 'regression' || !classes) {
    return { text: `${label}: ${values.map(number).join(', ')}` };
  }
  const names = page.class_labels || classes;
  if (task === 'binary') {
    const positive = values[0];
    const best = positive >= 0.5 ? 1 : 0;
    const of = names[1] === 'yes' ? '' : ` of ${names[1]}`;
    return {
      text: `${label}: ${names[best]}, ${percent(positive)} probability${of}`,
      detail: `Probability that ${label} is ${names[1]}: ${percent(positive)}; the answer is ${names[1]} from 50%.`,
      predicted: classes[best],
    };
  }
  if (task === 'multilabel') {
    const each = names.map((name, i) => `${name}: ${values[i] >= 0.5 ? 'yes' : 'no'}, ${percent(values[i])}`);
    return { text: each.join('; ') };
  }
  const order = values.map((v, i) => i).sort((a, b) => values[b] - values[a]);
  const [best, ...others] = order;
  const runnersUp = others.slice(0, 3).map((i) => `${names[i]} ${percent(values[i])}`).join(', ');
  return {
    text: `${label}: ${names[best]}, ${percent(values[best])} probability`,
    detail: runnersUp ? `Next: ${runnersUp}.` : '',
    predicted: classes[best],
  };
}

async function fetchJson(url) {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

async function main() {
  document.getElementById('model-name').textContent = modelName;
  const current = await fetchJson(`serving/${modelName}/current.json`);
  const tfjsTargets = (current.manifest.targets || []).filter((t) => t.target === 'tfjs' && t.pushed);
  if (tfjsTargets.length === 0) throw new Error(`version ${current.version} has no TF.js model`);
  const target = tfjsTargets.find((t) => t.variant === preferred) || tfjsTargets[0];
  const folder = `serving/${modelName}/${current.version}/${target.path}`;
  const model = await tf.loadGraphModel(`${folder}/model.json`);
  const page = await fetchJson(`${folder}/page.json`).catch(() => null);
  const answer = page || { task: current.manifest.task, classes: current.manifest.classes };
  if (page && page.description) document.getElementById('description').textContent = page.description;
  const features = featureInputs(model, page);
  buildForm(features, page);
  statusLine.textContent = `Version ${current.version}, TF.js ${target.variant} ` +
    `(${(target.size_bytes / 1e3).toFixed(0)} kB, test ${current.manifest.metric} ${target.metric.toFixed(4)}).`;
  statusLine.dataset.version = current.version;
  statusLine.dataset.variant = target.variant;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    output.classList.remove('error');
    try {
      const values = await predict(model, features);
      const shown = describe(values, answer);
      output.dataset.scores = JSON.stringify(values);
      output.dataset.predictedClass = shown.predicted || '';
      detail.textContent = shown.detail || '';
      output.value = shown.text;
    } catch (error) {
      output.classList.add('error');
      output.value = `error: ${error.message}`;
    }
  });
  form.addEventListener('input', () => { rowNote.textContent = ''; delete rowNote.dataset.row; });
  let next = 0;
  const fill = document.getElementById('fill');
  if (fill) {
    fill.addEventListener('click', () => {
      fillRow(features, page, next);
      next = (next + 1) % page.test_rows.length;
      form.requestSubmit();
    });
  }
}

main().catch((error) => {
  statusLine.classList.add('error');
  statusLine.textContent = `Cannot load the model: ${error.message}`;
});
