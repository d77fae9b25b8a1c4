// Headless Chromium test of the Flask example page: drop a real
// recording, then wait for upload progress, processing progress, the
// waveform canvas and the loudness and duration text. Keeps a
// screenshot in the artefact directory given as the first argument.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const sourceDir = path.resolve(__dirname, '..', '..');
const artefactDir = path.resolve(process.argv[2] || path.join(sourceDir, 'build-browser-test'));
const recording = '/usr/share/sounds/freedesktop/stereo/alarm-clock-elapsed.oga';
// Reference values from other tools on the same file: ffprobe 5.1
// reports a duration of 6.127667 s, and ffmpeg 5.1's ebur128 filter an
// integrated loudness of -9.3 LUFS.
const expectedDuration = '6.128 s';
const expectedLoudness = '-9.3 LUFS';
const timeoutMs = 60000;

function startStack(directory) {
  const stack = spawn('/usr/bin/python3',
    [path.join(sourceDir, 'examples', 'flask_app', 'tests', 'stack.py'), directory],
    { stdio: ['pipe', 'pipe', 'inherit'], env: process.env });
  const ready = new Promise((resolve, reject) => {
    let output = '';
    stack.stdout.on('data', (chunk) => {
      output += chunk;
      const match = output.match(/READY (http:\/\/127\.0\.0\.1:\d+)/);
      if (match) {
        resolve(match[1]);
      }
    });
    stack.on('exit', (code) => reject(new Error('stack.py exited with status ' + code)));
  });
  return { stack, ready };
}

async function main() {
  fs.mkdirSync(artefactDir, { recursive: true });
  const runDir = fs.mkdtempSync(path.join(artefactDir, 'run-'));
  const { stack, ready } = startStack(path.join(runDir, 'stack'));
  let context;
  try {
    const baseUrl = await ready;
    context = await chromium.launchPersistentContext(path.join(runDir, 'profile'), {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu',
        '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run'],
    });
    const page = await context.newPage();
    await page.goto(baseUrl + '/');

    await page.setInputFiles('#file-input', recording);
    await page.waitForFunction(
      () => document.getElementById('upload-percent').textContent === '100 %',
      null, { timeout: timeoutMs });
    await page.waitForFunction(
      () => ['done', 'error'].includes(document.body.dataset.state),
      null, { timeout: timeoutMs });

    const facts = await page.evaluate(() => {
      const canvas = document.getElementById('waveform');
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let drawn = 0;
      for (let i = 3; i < pixels.length; i += 4) {
        if (pixels[i] !== 0) {
          drawn++;
        }
      }
      return {
        state: document.body.dataset.state,
        status: document.getElementById('status').textContent,
        processing: document.getElementById('processing-percent').textContent,
        duration: document.getElementById('duration').textContent,
        loudness: document.getElementById('loudness').textContent,
        drawn,
      };
    });
    const screenshot = path.join(artefactDir, 'browser-upload.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ ...facts, screenshot }));

    const failures = [];
    if (facts.state !== 'done') failures.push('page state ' + facts.state + ': ' + facts.status);
    if (facts.processing !== '100 %') failures.push('processing shows ' + facts.processing);
    if (facts.drawn === 0) failures.push('waveform canvas is blank');
    if (facts.duration !== expectedDuration) failures.push('duration shows ' + facts.duration);
    if (facts.loudness !== expectedLoudness) failures.push('loudness shows ' + facts.loudness);
    if (failures.length > 0) {
      throw new Error(failures.join('; '));
    }
  } finally {
    if (context) {
      await context.close();
    }
    stack.stdin.end();
    await new Promise((resolve) => {
      if (stack.exitCode !== null) resolve();
      else stack.on('exit', resolve);
    });
  }
}

main().then(
  () => { console.log('browser test passed'); },
  (error) => { console.error('browser test failed: ' + error.message); process.exit(1); });
