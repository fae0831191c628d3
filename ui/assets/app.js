// Keyboard-first review: the panel's cards act through a hidden textbox and button.
// Requests go one at a time, each after the server acknowledged the one before: two set into
// the textbox before Gradio read the first sent the second twice (a fast double press decided
// the wrong card and lost the right one), and two in flight at once were saved in either order
// (an approval pressed first landed after the rejection pressed next: the flaky double-click test).
const labelchatQueue = [];
let labelchatSending = false;
let labelchatSerial = 0;
const LABELCHAT_ACK_WAIT_MS = 5000;  // an answer that never comes (a server error) stalls no longer
function labelchatAct(action, item, label) {
  if (!label && (action === 'accept' || action === 'reject')) {
    // Decide the label the card shows, even if the suggestions were refreshed meanwhile.
    const card = document.querySelector(`#lc-review .lc-card[data-item="${item}"]`);
    label = card ? card.dataset.label : null;
  }
  labelchatHide(action, item);
  // A notice (an undo, a refusal) was about the decision before: the next one clears it.
  if (action !== 'undo') document.querySelectorAll('#lc-review .lc-notice').forEach(n => n.remove());
  labelchatQueue.push({action: action, item: item, label: label || null, t: `${Date.now()}-${++labelchatSerial}`});
  labelchatSend();
}
function labelchatSend() {
  const box = document.querySelector('#lc-action textarea, #lc-action input');
  const go = document.querySelector('#lc-act');
  if (labelchatSending || !labelchatQueue.length || !box || !go) return;
  labelchatSending = true;
  const request = labelchatQueue.shift();
  box.value = JSON.stringify(request);
  box.dispatchEvent(new Event('input', {bubbles: true}));
  setTimeout(() => { go.click(); labelchatAwaitAck(request.t, Date.now()); }, 0);
}
function labelchatAwaitAck(t, since) {
  if (document.querySelector(`#lc-ack [data-t="${t}"]`) || Date.now() - since > LABELCHAT_ACK_WAIT_MS) {
    labelchatSending = false;
    labelchatSend();
  } else {
    setTimeout(() => labelchatAwaitAck(t, since), 5);
  }
}
// A card's buttons. The second click of a double-click would land on the next card, which
// slid under the pointer when this one left: it is ignored.
function labelchatClick(event, action, item) {
  if (event.detail > 1) return;
  labelchatAct(action, item);
}
// A decided card goes at once; the server acknowledges in #lc-ack, and sends the panel
// again only when the batch ends or a decision could not be saved (the card then returns).
function labelchatHide(action, item) {
  if (action === 'undo' || item === null) return;
  const card = document.querySelector(`#lc-review .lc-card[data-item="${item}"]`);
  if (!card) return;
  const index = labelchatCards().indexOf(card);
  card.classList.add('lc-done');
  card.classList.remove('focused');
  const rest = labelchatCards();
  if (rest.length) rest[Math.max(0, Math.min(index, rest.length - 1))].classList.add('focused');
}
function labelchatCards() { return Array.from(document.querySelectorAll('#lc-review .lc-card:not(.lc-done)')); }
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
  if (['input', 'textarea', 'select'].includes(tag) || event.target.isContentEditable) return;
  // Enter or Space on a focused button or link presses it ("Next batch"), not the card's Approve
  if (['button', 'a'].includes(tag) && (event.key === 'Enter' || event.key === ' ')) return;
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

// "Open these in the Review panel" under images shown in the chat: the ids go to the server
// through a hidden box and button (as decisions do), then the Review tab is selected.
document.addEventListener('click', (event) => {
  const link = event.target.closest && event.target.closest('a.lc-open-review');
  if (!link) return;
  event.preventDefault();
  const box = document.querySelector('#lc-open-ids textarea, #lc-open-ids input');
  const go = document.querySelector('#lc-open');
  if (!box || !go) return;
  box.value = (link.getAttribute('href') || '').split('lc-open=')[1] || '';
  box.dispatchEvent(new Event('input', {bubbles: true}));
  setTimeout(() => {
    go.click();
    const tab = [...document.querySelectorAll('button[role="tab"]')].find(b => b.textContent.trim() === 'Review');
    if (tab) tab.click();
  }, 0);
});
