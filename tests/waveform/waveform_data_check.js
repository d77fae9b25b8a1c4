// Loads the library's .dat and JSON waveforms with waveform-data, the
// reader peaks.js uses, and checks the header and several min/max values.
// Usage: node waveform_data_check.js MODULE_PREFIX WRITER FOLDER
// Exits 77 (skipped) when waveform-data is not installed under
// MODULE_PREFIX, for example because npm had no network.
'use strict';

const assert = require('node:assert/strict');
const childProcess = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const [modulePrefix, writer, folder] = process.argv.slice(2);
let WaveformData;
try {
  WaveformData = require(path.join(modulePrefix, 'node_modules',
                                   'waveform-data'));
} catch (error) {
  console.log(`waveform-data is not installed: ${error.message}`);
  process.exit(77);
}

fs.mkdirSync(folder, {recursive: true});
childProcess.execFileSync(writer, [folder], {stdio: 'inherit'});

function loadDat(name) {
  const bytes = fs.readFileSync(path.join(folder, name));
  const buffer = bytes.buffer.slice(bytes.byteOffset,
                                    bytes.byteOffset + bytes.byteLength);
  return WaveformData.create(buffer);
}

function loadJson(name) {
  const text = fs.readFileSync(path.join(folder, name), 'utf8');
  return WaveformData.create(JSON.parse(text));
}

// The signal's peaks in pixel p, as write_waveforms.c builds them. The
// `| 0` turns -0 into 0, which strict assertions tell apart.
function stereoPeaks(p) {
  return [[(-1000 * p) | 0, 1000 * p + 500], [(-100 * p) | 0, 100 * p]];
}

// Mono mix: the integer mean of both channels, truncated toward zero,
// then divided by 256 for 8 bits, truncated again.
function mono8Peaks(p) {
  const low = Math.trunc((-1000 * p - 100 * p) / 2);
  const high = Math.trunc((1000 * p + 500 + 100 * p) / 2);
  return [Math.trunc(low / 256) | 0, Math.trunc(high / 256) | 0];
}

function checkHeader(waveform, channels, bits) {
  assert.equal(waveform.channels, channels);
  assert.equal(waveform.length, 10);
  assert.equal(waveform.sample_rate, 44100);
  assert.equal(waveform.scale, 100);
  assert.equal(waveform.bits, bits);
}

for (const waveform of [loadDat('stereo16.dat'), loadJson('stereo16.json')]) {
  checkHeader(waveform, 2, 16);
  for (const p of [0, 1, 5, 9]) {
    const expected = stereoPeaks(p);
    for (let c = 0; c < 2; c++) {
      assert.equal(waveform.channel(c).min_sample(p), expected[c][0],
                   `stereo pixel ${p} channel ${c} min`);
      assert.equal(waveform.channel(c).max_sample(p), expected[c][1],
                   `stereo pixel ${p} channel ${c} max`);
    }
  }
}

for (const waveform of [loadDat('mono8.dat'), loadJson('mono8.json')]) {
  checkHeader(waveform, 1, 8);
  for (const p of [0, 1, 5, 9]) {
    const expected = mono8Peaks(p);
    assert.equal(waveform.channel(0).min_sample(p), expected[0],
                 `mono pixel ${p} min`);
    assert.equal(waveform.channel(0).max_sample(p), expected[1],
                 `mono pixel ${p} max`);
  }
}

console.log('waveform-data read all four files');
