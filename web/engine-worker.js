// The dedicated module worker that runs xinsheng's engine (see engine.js for the protocol).
import { serve } from './engine.js';

const receive = serve((message, transfer) => self.postMessage(message, transfer ?? []));
self.addEventListener('message', (event) => receive(event.data));
self.postMessage({ kind: 'ready' });
