// Keyboard-first review: the panel's cards act through a hidden textbox and button.
function labelchatAct(action, item, label) {
  const box = document.querySelector('#lc-action textarea, #lc-action input');
  const go = document.querySelector('#lc-act');
  if (!box || !go) return;
  box.value = JSON.stringify({action: action, item: item, label: label || null, t: Date.now()});
  box.dispatchEvent(new Event('input', {bubbles: true}));
  setTimeout(() => go.click(), 0);
}
function labelchatCards() { return Array.from(document.querySelectorAll('#lc-review .lc-card')); }
function labelchatFocus(delta) {
  const cards = labelchatCards();
  if (!cards.length) return null;
  let index = cards.findIndex(c => c.classList.contains('focused'));
  if (index < 0) index = 0;
  index = Math.max(0, Math.min(cards.length - 1, index + delta));
  cards.forEach((c, i) => c.classList.toggle('focused', i === index));
  return cards[index];
}
document.addEventListener('keydown', (event) => {
  const tag = (event.target.tagName || '').toLowerCase();
  if (['input', 'textarea', 'select'].includes(tag)) return;
  const panel = document.querySelector('#lc-review');
  if (!panel || panel.offsetParent === null) return;  // only while the Review tab is shown
  const key = event.key.toLowerCase();
  if (key === 'arrowright' || key === 'j') { labelchatFocus(1); event.preventDefault(); return; }
  if (key === 'arrowleft' || key === 'k') { labelchatFocus(-1); event.preventDefault(); return; }
  if (key === 'u') { labelchatAct('undo', null); return; }
  const card = labelchatFocus(0);
  if (!card) return;
  const item = parseInt(card.dataset.item, 10);
  if (key === 'a' || key === 'enter') { labelchatAct('accept', item); event.preventDefault(); }
  else if (key === 'r') labelchatAct('reject', item);
  else if (key === 's') labelchatAct('skip', item);
  else if (/^[1-9]$/.test(key)) {
    const option = card.querySelectorAll('select.lc-label option')[parseInt(key, 10)];
    if (option) labelchatAct('correct', item, option.value);
  }
});
