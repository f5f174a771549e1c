// live-worklet.js: the AudioWorklet of the live screen. It runs in an
// AudioContext opened at 16 kHz (the browser resamples the microphone) and
// hands each block of samples to the page.
class LiveCapture extends AudioWorkletProcessor {
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch && ch.length) this.port.postMessage(ch.slice(0));
    return true;
  }
}
registerProcessor('live-capture', LiveCapture);
