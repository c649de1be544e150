// Tandem dashboard: small progressive enhancement. Every page works without it; this
// adds copy buttons, the tenant switcher, typed confirmations and the live inspector
// (a feed the server pushes when the room changes).
(function () {
  'use strict';

  // Copy buttons: <button data-copy="#id"> copies the element's text.
  document.addEventListener('click', function (event) {
    var button = event.target.closest('[data-copy]');
    if (!button) return;
    var source = document.querySelector(button.getAttribute('data-copy'));
    if (!source) return;
    var text = source.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = 'Copied';
      button.setAttribute('data-copied', 'true');
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
    } else {
      selectText(source);
    }
  });

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // Tenant switcher: navigate on change (the form's button does it without JS).
  var switcher = document.querySelector('[data-tenant-switch]');
  if (switcher) {
    var go = switcher.querySelector('button');
    if (go) go.hidden = true;
    switcher.querySelector('select').addEventListener('change', function (e) {
      window.location.href = '/dashboard/t/' + encodeURIComponent(e.target.value);
    });
  }

  // Typed confirmation: the submit button stays disabled until the name is typed
  // (the server checks it again).
  document.querySelectorAll('[data-confirm]').forEach(function (form) {
    var input = form.querySelector('input[name=confirm]');
    var submit = form.querySelector('button[type=submit]');
    var expected = form.getAttribute('data-confirm');
    var sync = function () { submit.disabled = input.value !== expected; };
    input.addEventListener('input', sync);
    sync();
  });

  // Live inspector: a server-sent-events feed of server-rendered fragments.
  var live = document.querySelector('[data-live]');
  if (live && window.EventSource) {
    var status = document.querySelector('[data-live-status]');
    var source = new EventSource(live.getAttribute('data-live'));
    var setStatus = function (on, text) {
      if (!status) return;
      status.classList.toggle('on', on);
      status.querySelector('span:last-child').textContent = text;
    };
    source.onopen = function () { setStatus(true, 'Live'); };
    source.onerror = function () { setStatus(false, 'Reconnecting…'); };
    source.addEventListener('room', function (event) {
      var data = JSON.parse(event.data);
      swap('[data-slot=tree]', data.tree);
      swap('[data-slot=people]', data.people);
      var count = document.querySelector('[data-slot=connections]');
      if (count) count.textContent = String(data.connections);
      var readOnly = document.querySelector('[data-slot=read-only]');
      if (readOnly && typeof data.readOnly === 'boolean') {
        readOnly.innerHTML = data.readOnly
          ? '<span class="badge warn">read-only</span>'
          : '<span class="badge ok">writable</span>';
        // Someone else may have switched it: the switch offers the other state.
        var button = document.querySelector('[data-read-only-switch]');
        var field = button && button.form.querySelector('input[name=read_only]');
        if (button && field) {
          field.value = data.readOnly ? 'off' : 'on';
          button.textContent = data.readOnly ? 'Make writable again' : 'Make read-only';
          var state = button.form.querySelector('.switch .badge');
          if (state) state.outerHTML = readOnly.innerHTML;
        }
      }
      live.setAttribute('data-version', String(Number(live.getAttribute('data-version') || 0) + 1));
    });
    source.addEventListener('gone', function () {
      setStatus(false, 'Room deleted');
      source.close();
    });
  }

  // Replaces a slot's HTML, keeping which tree nodes the reader opened or closed.
  function swap(selector, html) {
    var slot = document.querySelector(selector);
    if (!slot || typeof html !== 'string') return;
    var open = {};
    slot.querySelectorAll('details[data-path]').forEach(function (d) {
      open[d.getAttribute('data-path')] = d.open;
    });
    slot.innerHTML = html;
    slot.querySelectorAll('details[data-path]').forEach(function (d) {
      var path = d.getAttribute('data-path');
      if (Object.prototype.hasOwnProperty.call(open, path)) d.open = open[path];
    });
  }
})();
