// Reference outputs of the peers' expression classifiers from their original runtime, TensorFlow.js (pure JS,
// CPU backend) in node, for tests/test_peers.py. Run once by hand, not by CI:
//
//   mkdir -p /tmp/peers_node && (cd /tmp/peers_node && npm init -y >/dev/null &&
//     npm install @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 @vladmandic/face-api@1.7.15)
//   .venv/bin/python benchmarks/peers/fetch_peers.py
//   .venv/bin/python benchmarks/peers/reference_inputs.py /tmp/peers_inputs.json
//   node benchmarks/peers/make_reference.mjs /tmp/peers_node /tmp/peers_inputs.json tests/data/peers_reference.json
//
// face-api: face-api's own code (dist/face-api.node-wasm.js, which uses the installed @tensorflow/tfjs; the wasm
// backend package is only imported, the CPU backend is selected) with the weights decoded by tfjs's
// tf.io.decodeWeights from the cached manifest + .bin; forward() does its padding, resize and normalisation.
// human's emotion model: tf.loadGraphModel through an in-memory IO handler, preprocessed with the ops of human's
// src/gear/emotion.ts (@vladmandic/human 3.3.6): face in 0..1, resizeBilinear to 64x64 (alignCorners false),
// grey = sum(rgb * [0.2989, 0.587, 0.114]), (grey - 0.5) * 2. Grey inputs are repeated into three channels.

import fs from 'fs';
import path from 'path';
import { createRequire } from 'module';

const [nodeDir, inputsPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error('usage: node make_reference.mjs NODE_PREFIX INPUTS.json OUT.json');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(nodeDir), 'noop.js'));
const tf = require('@tensorflow/tfjs');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

function readBuffer(file) {
  const data = fs.readFileSync(file);
  return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
}

function concatShards(folder, groups) {
  const parts = groups.flatMap((group) => group.paths.map((p) => new Uint8Array(readBuffer(path.join(folder, p)))));
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) { out.set(part, offset); offset += part.length; }
  return out.buffer;
}

function rgbTensor(item) {
  // uint8 pixels -> float32 [h, w, 3], grey repeated into three channels
  const bytes = Buffer.from(item.pixels_base64, 'base64');
  const [h, w] = item.shape;
  const channels = item.shape.length === 3 ? item.shape[2] : 1;
  const data = new Float32Array(h * w * 3);
  for (let i = 0; i < h * w; i++) {
    for (let c = 0; c < 3; c++) data[i * 3 + c] = bytes[i * channels + (channels === 3 ? c : 0)];
  }
  return tf.tensor3d(data, [h, w, 3], 'float32');
}

async function main() {
  await tf.setBackend('cpu');
  await tf.ready();
  const payload = JSON.parse(fs.readFileSync(inputsPath, 'utf8'));

  // face-api FaceExpressionNet
  const faceDir = payload.packages.face_api.dir;
  const manifest = JSON.parse(fs.readFileSync(path.join(faceDir, 'model/face_expression_model-weights_manifest.json')));
  const weightMap = tf.io.decodeWeights(concatShards(path.join(faceDir, 'model'), manifest), manifest.flatMap((g) => g.weights));
  await faceapi.nets.faceExpressionNet.loadFromWeightMap(weightMap);
  const faceApiProbs = [];
  for (const item of payload.inputs) {
    const image = rgbTensor(item);
    const probs = await faceapi.nets.faceExpressionNet.forward(image);
    faceApiProbs.push(Array.from(await probs.data()));
    tf.dispose([image, probs]);
  }

  // human's mini-Xception emotion graph model
  const humanDir = payload.packages.human_models.dir;
  const modelJson = JSON.parse(fs.readFileSync(path.join(humanDir, 'models/emotion.json')));
  const handler = {
    load: async () => ({
      modelTopology: modelJson.modelTopology,
      format: modelJson.format,
      generatedBy: modelJson.generatedBy,
      convertedBy: modelJson.convertedBy,
      userDefinedMetadata: modelJson.userDefinedMetadata,
      weightSpecs: modelJson.weightsManifest.flatMap((g) => g.weights),
      weightData: concatShards(path.join(humanDir, 'models'), modelJson.weightsManifest),
    }),
  };
  const model = await tf.loadGraphModel(handler);
  const size = model.inputs[0].shape[2];
  const greyWeights = tf.tensor1d([0.2989, 0.5870, 0.1140], 'float32');
  const miniXceptionProbs = [];
  for (const item of payload.inputs) {
    const t = {};
    t.image = rgbTensor(item);
    t.face = tf.div(tf.expandDims(t.image, 0), tf.scalar(255, 'float32'));
    t.resize = tf.image.resizeBilinear(t.face, [size, size], false);
    t.channels = tf.mul(t.resize, greyWeights);
    t.grayscale = tf.sum(t.channels, 3, true);
    t.grayscaleSub = tf.sub(t.grayscale, tf.scalar(0.5, 'float32'));
    t.grayscaleMul = tf.mul(t.grayscaleSub, tf.scalar(2, 'float32'));
    t.emotion = model.execute(t.grayscaleMul);
    miniXceptionProbs.push(Array.from(await t.emotion.data()));
    tf.dispose(Object.values(t));
  }

  const inputs = payload.inputs.map(({ pixels_base64: _, ...rest }) => rest);
  const out = {
    about: 'Peer expression classifiers run by TensorFlow.js (CPU backend) in node on real faces; written by '
      + 'benchmarks/peers/make_reference.mjs (see its header). Inputs are read back from ../shared/corpus by '
      + 'benchmarks/peers/reference_inputs.py and checked by sha256 of their pixels.',
    runtime: { node: process.version, tfjs: tf.version.tfjs, backend: tf.getBackend(), face_api: faceapi.version },
    inputs,
    face_api: {
      package: payload.packages.face_api.spec,
      labels: ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised'],
      probs: faceApiProbs,
    },
    mini_xception: {
      package: payload.packages.human_models.spec,
      labels: ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'],
      probs: miniXceptionProbs,
    },
  };
  fs.mkdirSync(path.dirname(outPath), { recursive: true });
  fs.writeFileSync(outPath, `${JSON.stringify(out, null, 1)}\n`);
  console.log(`wrote ${inputs.length} inputs x 2 models to ${outPath}`);
}

main().catch((error) => { console.error(error); process.exit(1); });
