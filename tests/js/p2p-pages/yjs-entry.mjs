// Entry of the browser bundle that ywebrtc-browser.test.mjs builds with
// esbuild: yjs and y-webrtc from node_modules, as globals for yjs-page.js.
import * as Y from 'yjs';
import { WebrtcProvider } from 'y-webrtc';

window.Y = Y;
window.WebrtcProvider = WebrtcProvider;
