// Logs the widget's events into the page, as a host page listening to them would.
const log = document.getElementById('events');
for (const type of ['sentiment-prediction', 'sentiment-correction', 'sentiment-error']) {
  document.addEventListener(type, (ev) => {
    const item = document.createElement('li');
    item.dataset.type = type;
    item.textContent = `${type}: ${JSON.stringify(ev.detail)}`;
    log.append(item);
    (window.widgetEvents ??= []).push({ type, detail: ev.detail });
  });
}
