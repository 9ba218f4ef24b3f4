// The flow builder: its buttons (add, move, remove a step; pick a trigger or an action) send the
// form in the background and swap the page's content, so nothing reloads and the place on the
// page is kept; pickers show "map a value" only when asked and search as one types; the data
// panel inserts variables where the cursor is; unsaved changes are guarded; Enter in a field
// never sends the form. Without this script the same buttons re-render the page.
(function () {
  'use strict';

  var main = document.getElementById('main');
  if (!document.getElementById('builder')) return;
  document.documentElement.classList.add('js');
  var dirty = false;
  var lastField = null;

  function builder() { return document.getElementById('builder'); }

  // Pickers: the text field is for "map a value", shown while nothing is chosen or when asked.
  function showMap(select) {
    var map = select.closest('.field').querySelector('[data-map]');
    if (map) map.hidden = !(select.value === '' || select.value === '__map');
  }
  // A yes/no switch: its text field shows only while "Map a value…" is ticked.
  function showSwitchMap(box) {
    var map = box.closest('.field').querySelector('[data-map]');
    if (map) map.hidden = !box.checked;
  }
  function setUp() {
    document.querySelectorAll('#builder select[data-pick]').forEach(showMap);
    document.querySelectorAll('#builder [data-map-toggle]').forEach(showSwitchMap);
    document.querySelectorAll('#builder .picker-search').forEach(function (search) { search.hidden = false; });
  }

  document.addEventListener('change', function (event) {
    var target = event.target;
    if (!target.closest || !target.closest('#builder')) return;
    dirty = true;
    if (target.matches('select[data-pick]')) {
      showMap(target);
      if (target.value === '__map') {
        var input = target.closest('.field').querySelector('[data-variable-target]');
        if (input) { input.focus(); lastField = input; }
      }
    }
    if (target.matches('[data-map-toggle]')) {
      showSwitchMap(target);
      var mapped = target.closest('.field').querySelector('[data-variable-target]');
      if (target.checked && mapped) { mapped.focus(); lastField = mapped; }
    }
    // A date picked replaces a mapped value.
    if (target.matches('input[data-pick]')) {
      var text = target.closest('.field').querySelector('[data-variable-target]');
      if (text) text.value = '';
    }
  });
  document.addEventListener('input', function (event) {
    var target = event.target;
    if (!target.closest || !target.closest('#builder')) return;
    dirty = true;
    // A value mapped over a date clears the date, so the mapped one is saved.
    if (target.matches('[data-variable-target]')) {
      var date = target.closest('.field') && target.closest('.field').querySelector('input[data-pick]');
      if (date && target.value) date.value = '';
    }
    if (target.matches('.picker-search')) search(target);
  });

  // Search-as-you-type: the records of the picker are replaced by the lookup's answer.
  var timers = new WeakMap();
  function search(box) {
    clearTimeout(timers.get(box));
    timers.set(box, setTimeout(function () {
      var select = document.getElementById(box.dataset.for);
      var url = box.dataset.lookupUrl + '&q=' + encodeURIComponent(box.value.trim());
      var step = box.closest('.step');
      var connection = step && step.querySelector('select[name$=".connectionId"]');
      if (url.indexOf('connector=') >= 0 && connection && connection.value) {
        url += '&connectionId=' + encodeURIComponent(connection.value);
      }
      fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
        .then(function (r) { return r.json(); })
        .then(function (answer) {
          var group = select.querySelector('optgroup[data-records]');
          if (!group) return;
          var chosen = select.value;
          group.replaceChildren.apply(group, (answer.items || []).map(function (item) {
            var option = document.createElement('option');
            option.value = item.value;
            option.textContent = item.label;
            return option;
          }));
          if ((answer.items || []).length && !select.querySelector('option[value="' + CSS.escape(chosen) + '"]')) {
            select.value = answer.items[0].value;
          } else {
            select.value = chosen;
          }
          if (!answer.items || !answer.items.length) box.setAttribute('aria-description', 'Nothing found');
          else box.removeAttribute('aria-description');
          showMap(select);
        })
        .catch(function () {});
    }, 200));
  }

  // Shown on the page (not in a closed <details>, not hidden).
  function visible(element) {
    return element.checkVisibility ? element.checkVisibility() : element.offsetParent !== null;
  }

  // The data panel: a value inserts its variable into the step's last focused field, else
  // into the step's first input field shown.
  document.addEventListener('focusin', function (event) {
    if (event.target.matches('[data-variable-target]')) lastField = event.target;
    // A connector's picker has no records until asked: the first page comes when its search
    // box is first entered.
    if (event.target.matches('.picker-search') && !event.target.dataset.asked) {
      event.target.dataset.asked = '1';
      var select = document.getElementById(event.target.dataset.for);
      var group = select && select.querySelector('optgroup[data-records]');
      if (group && !group.children.length) search(event.target);
    }
  });
  document.addEventListener('click', function (event) {
    var chip = event.target.closest('[data-insert]');
    if (!chip || !chip.closest('#builder')) return;
    var step = chip.closest('.step');
    // The step's own field: not one of a node nested in it (an if's Then steps).
    var field = lastField && step && lastField.closest('.step') === step && visible(lastField)
      ? lastField
      : step && Array.prototype.find.call(step.querySelectorAll('.inputs [data-variable-target]'), function (f) {
        return f.closest('.step') === step && visible(f);
      });
    if (!field) return;
    var text = '{{' + chip.dataset.insert + '}}';
    var start = field.selectionStart == null ? field.value.length : field.selectionStart;
    var end = field.selectionEnd == null ? field.value.length : field.selectionEnd;
    field.value = field.value.slice(0, start) + text + field.value.slice(end);
    field.focus();
    field.setSelectionRange(start + text.length, start + text.length);
    field.dispatchEvent(new Event('input', { bubbles: true }));
  });

  // Enter in a one-line field does not send a half-built flow.
  document.addEventListener('keydown', function (event) {
    var target = event.target;
    if (event.key !== 'Enter' || !target.closest || !target.closest('#builder')) return;
    if (target.matches('input:not([type=submit]):not([type=button]):not([type=checkbox]):not([type=radio])')) {
      event.preventDefault();
    }
  });

  // A select that re-renders the form when it changes; arrowing through a closed select applies
  // on Enter or when it is left, never at the first arrow.
  function onChosen(select, apply) {
    var byKeys = false;
    var initial = select.value;
    select.addEventListener('keydown', function (event) {
      if (event.key === 'Enter') {
        event.preventDefault();
        if (select.value !== initial) apply();
      } else if (event.key !== 'Tab') {
        byKeys = true;
      }
    });
    select.addEventListener('change', function () { if (!byKeys) apply(); });
    select.addEventListener('blur', function () {
      if (byKeys && select.value !== initial) apply();
      byKeys = false;
    });
  }
  function bindRefresh() {
    document.querySelectorAll('#builder [data-refresh]').forEach(function (control) {
      var refresh = function () {
        var button = builder().querySelector('button[name=op][value=refresh]');
        send(builder(), button, control.id);
      };
      if (control.tagName === 'SELECT') onChosen(control, refresh);
      else control.addEventListener('change', refresh);
    });
  }

  // The form's buttons, sent in the background; the answer replaces the page's content.
  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (form.id !== 'builder') { dirty = false; return; }
    var button = event.submitter;
    // Buttons that send the form elsewhere (drafts, tests) are ordinary submits.
    if (button && button.hasAttribute('formaction')) { dirty = false; return; }
    event.preventDefault();
    send(form, button, null);
  });

  // A later send carries everything an earlier one did (the form is read when sent), so an
  // answer still on its way is dropped rather than swapped over newer changes.
  var inFlight = null;
  function send(form, button, focusId) {
    if (inFlight) inFlight.abort();
    var controller = new AbortController();
    inFlight = controller;
    var data = new URLSearchParams(new FormData(form));
    if (button && button.name) data.set(button.name, button.value);
    var op = button ? button.value : 'save';
    var before = window.scrollY;
    form.setAttribute('aria-busy', 'true');
    fetch(form.action, {
      method: 'POST',
      body: data,
      credentials: 'same-origin',
      headers: { 'X-Timix-Builder': '1' },
      signal: controller.signal,
    }).then(function (response) {
      var to = response.headers.get('X-Redirect');
      if (to) {
        dirty = false;
        window.location.assign(to);
        return null;
      }
      return response.text().then(function (html) {
        if (!controller.signal.aborted) swap(html, op, focusId, before);
      });
    }).catch(function () {
      if (controller.signal.aborted) return;
      // Offline or refused: send it the ordinary way.
      dirty = false;
      HTMLFormElement.prototype.submit.call(form);
    }).then(function () { if (inFlight === controller) inFlight = null; });
  }

  function swap(html, op, focusId, scroll) {
    var page = new DOMParser().parseFromString(html, 'text/html');
    var fresh = page.getElementById('main');
    if (!fresh) return;
    main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes));
    // Scripts inserted this way do not run: load them again (the schedule editor's).
    main.querySelectorAll('script[src]').forEach(function (old) {
      if (old.src.indexOf('/builder.js') >= 0) return;
      var script = document.createElement('script');
      script.src = old.src;
      old.replaceWith(script);
    });
    setUp();
    bindRefresh();
    window.scrollTo(0, scroll);
    // The server names the field where the work goes on after an edit (the new step's first
    // field, the moved step's button, the list a step left).
    var marker = main.querySelector('[data-focus]');
    var edited = !!marker;
    var focus = marker ? document.getElementById(marker.dataset.focus) : null;
    if (!marker && op === 'save') {
      focus = main.querySelector('#builder [aria-invalid=true]') || main.querySelector('#form-error');
    } else if (!marker && focusId) {
      focus = document.getElementById(focusId);
    }
    if (focus) {
      var moved = edited && op.indexOf('move_') === 0;
      var jump = op === 'save' || (edited && !moved);
      focus.focus({ preventScroll: !jump });
      if (jump) focus.scrollIntoView({ block: 'center' });
      // A moved step's button stays in view where the step went.
      if (moved) focus.scrollIntoView({ block: 'nearest' });
    }
    dirty = true;
  }

  // Leaving with unsaved changes asks first.
  window.addEventListener('beforeunload', function (event) {
    if (!dirty) return;
    event.preventDefault();
    event.returnValue = '';
  });

  setUp();
  bindRefresh();
})();
