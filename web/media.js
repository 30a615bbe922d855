// Local media: the camera and microphone when the browser gives them, else a
// generated test stream (an animated canvas and a quiet oscillator tone).

/**
 * Resolves to { stream, source, stop } where source is "camera" or
 * "generated". `forceGenerated` skips getUserMedia.
 */
export async function getLocalMedia({ forceGenerated = false } = {}) {
  if (!forceGenerated && navigator.mediaDevices?.getUserMedia) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      return { stream, source: 'camera', stop: () => stopTracks(stream) };
    } catch (err) {
      console.warn(`getUserMedia failed (${err.name}: ${err.message}); using a generated test stream`);
    }
  }
  return generatedMedia();
}

function stopTracks(stream) {
  for (const track of stream.getTracks()) track.stop();
}

/** A canvas animation plus a WebAudio oscillator, as one MediaStream. */
function generatedMedia() {
  const canvas = document.createElement('canvas');
  canvas.width = 320;
  canvas.height = 240;
  const ctx = canvas.getContext('2d');
  const hue = Math.floor(Math.random() * 360);
  const started = performance.now();
  function draw() {
    const t = (performance.now() - started) / 1000;
    ctx.fillStyle = `hsl(${hue} 45% 25%)`;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = `hsl(${(hue + 180) % 360} 80% 60%)`;
    const x = canvas.width / 2 + Math.cos(t * 2) * 100;
    const y = canvas.height / 2 + Math.sin(t * 3) * 70;
    ctx.beginPath();
    ctx.arc(x, y, 24, 0, Math.PI * 2);
    ctx.fill();
    ctx.fillStyle = '#fff';
    ctx.font = '16px sans-serif';
    ctx.fillText(`test stream ${t.toFixed(1)} s`, 10, 24);
  }
  draw();
  // A timer rather than requestAnimationFrame: it keeps drawing in a
  // background tab, where the stream is still being sent.
  const timer = setInterval(draw, 1000 / 15);
  const stream = canvas.captureStream(15);

  let audio = null;
  try {
    audio = new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 440;
    gain.gain.value = 0.05;
    const dest = audio.createMediaStreamDestination();
    osc.connect(gain).connect(dest);
    osc.start();
    for (const track of dest.stream.getAudioTracks()) stream.addTrack(track);
  } catch (err) {
    console.warn(`no generated audio: ${err.message}`);
  }

  return {
    stream,
    source: 'generated',
    stop() {
      clearInterval(timer);
      stopTracks(stream);
      audio?.close().catch(() => {});
    },
  };
}
