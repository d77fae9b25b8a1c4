// Upload page logic: presigned PUT with upload progress, processing
// progress from server-sent events, then the waveform, loudness and
// duration of the processed asset. Plain browser JavaScript, no build.
'use strict';

// The example identifies the owner with a random id in a cookie, which
// EventSource sends too. A real app uses its own session.
function ownerId() {
  const match = document.cookie.match(/(?:^|; )owner=([^;]+)/);
  if (match) {
    return match[1];
  }
  const id = 'owner-' + crypto.getRandomValues(new Uint32Array(2)).join('');
  document.cookie = 'owner=' + id + '; path=/; SameSite=Strict';
  return id;
}

const elements = {
  drop: document.getElementById('drop-zone'),
  input: document.getElementById('file-input'),
  uploadBar: document.getElementById('upload-progress'),
  uploadText: document.getElementById('upload-percent'),
  processingBar: document.getElementById('processing-progress'),
  processingText: document.getElementById('processing-percent'),
  processingState: document.getElementById('processing-state'),
  canvas: document.getElementById('waveform'),
  duration: document.getElementById('duration'),
  loudness: document.getElementById('loudness'),
  status: document.getElementById('status'),
};

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
    credentials: 'same-origin',
  });
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) {
    const message = data && data.error ? data.error.message : response.statusText;
    throw new Error(method + ' ' + path + ' failed: ' + message);
  }
  return data;
}

function setPercent(bar, text, fraction) {
  const percent = Math.round(fraction * 100);
  bar.value = percent;
  text.textContent = percent + ' %';
}

// PUT the file to the presigned URL with XMLHttpRequest, whose upload
// events report progress (fetch does not). Browsers set Content-Length
// themselves, so only the other signed headers are sent.
function putFile(ticket, file) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(ticket.method, ticket.url);
    for (const [name, value] of Object.entries(ticket.headers)) {
      if (name.toLowerCase() !== 'content-length') {
        request.setRequestHeader(name, value);
      }
    }
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) {
        setPercent(elements.uploadBar, elements.uploadText, event.loaded / event.total);
      }
    };
    request.onload = () => {
      if (request.status >= 200 && request.status < 300) {
        setPercent(elements.uploadBar, elements.uploadText, 1);
        resolve();
      } else {
        reject(new Error('upload failed with HTTP ' + request.status));
      }
    };
    request.onerror = () => reject(new Error('upload failed: network error'));
    request.send(file);
  });
}

// Follow the job's server-sent events until it reaches a terminal state.
function followJob(jobId) {
  return new Promise((resolve, reject) => {
    const source = new EventSource('/api/jobs/' + encodeURIComponent(jobId) + '/events');
    source.addEventListener('progress', (message) => {
      const event = JSON.parse(message.data);
      setPercent(elements.processingBar, elements.processingText, event.fraction);
      elements.processingState.textContent = event.state;
      if (['succeeded', 'failed', 'dead', 'cancelled'].includes(event.state)) {
        source.close();
        if (event.state === 'succeeded') {
          setPercent(elements.processingBar, elements.processingText, 1);
          resolve(event);
        } else {
          reject(new Error('processing ' + event.state + ': ' + (event.error_code || '')));
        }
      }
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        reject(new Error('progress stream closed'));
      }
    };
  });
}

// Draw the min/max peaks: one vertical line per canvas column. Values
// are integers of the waveform's bit depth, so divide by 128 or 32768.
function drawWaveform(waveform) {
  const context = elements.canvas.getContext('2d');
  const width = elements.canvas.width;
  const height = elements.canvas.height;
  const scale = waveform.bits === 8 ? 128 : 32768;
  const step = 2 * waveform.channels;
  const pixels = waveform.length;
  context.clearRect(0, 0, width, height);
  context.fillStyle = '#1f5fbf';
  for (let x = 0; x < width; x++) {
    const first = Math.floor((x * pixels) / width);
    const last = Math.max(first + 1, Math.floor(((x + 1) * pixels) / width));
    let low = 0;
    let high = 0;
    for (let pixel = first; pixel < last && pixel < pixels; pixel++) {
      low = Math.min(low, waveform.data[pixel * step] / scale);
      high = Math.max(high, waveform.data[pixel * step + 1] / scale);
    }
    const top = ((1 - high) / 2) * height;
    const bottom = ((1 - low) / 2) * height;
    context.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
}

function showFacts(asset) {
  const result = asset.analysis || {};
  const media = result.media || asset.probe || {};
  const analysis = result.analysis || {};
  elements.duration.textContent =
    typeof media.duration === 'number' ? media.duration.toFixed(3) + ' s' : 'unknown';
  if (typeof analysis.integrated_lufs === 'number') {
    elements.loudness.textContent = analysis.integrated_lufs.toFixed(1) + ' LUFS';
  } else {
    elements.loudness.textContent =
      'undefined (' + (analysis.integrated_lufs_undefined_reason || 'not measured') + ')';
  }
}

async function handleFile(file) {
  elements.status.textContent = 'Uploading ' + file.name;
  setPercent(elements.uploadBar, elements.uploadText, 0);
  setPercent(elements.processingBar, elements.processingText, 0);
  try {
    const ticket = await api('POST', '/api/uploads', {
      filename: file.name,
      size_bytes: file.size,
      content_type: file.type || 'application/octet-stream',
    });
    await putFile(ticket, file);
    const asset = await api('POST', '/api/uploads/' + ticket.upload_id + '/complete');
    elements.status.textContent = 'Processing';
    await followJob(asset.job_id);
    const ready = await api('GET', '/api/assets/' + asset.id);
    drawWaveform(await api('GET', '/api/assets/' + asset.id + '/waveform'));
    showFacts(ready);
    elements.status.textContent = 'Done';
    document.body.dataset.state = 'done';
  } catch (error) {
    elements.status.textContent = error.message;
    document.body.dataset.state = 'error';
  }
}

ownerId();
elements.input.addEventListener('change', () => {
  if (elements.input.files.length > 0) {
    handleFile(elements.input.files[0]);
  }
});
elements.drop.addEventListener('dragover', (event) => {
  event.preventDefault();
  elements.drop.classList.add('active');
});
elements.drop.addEventListener('dragleave', () => elements.drop.classList.remove('active'));
elements.drop.addEventListener('drop', (event) => {
  event.preventDefault();
  elements.drop.classList.remove('active');
  if (event.dataTransfer.files.length > 0) {
    handleFile(event.dataTransfer.files[0]);
  }
});
