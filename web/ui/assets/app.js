// Small enhancements; every page works without them.
(function () {
  'use strict';

  // Copy buttons: data-copy="text" or data-copy-from="input id".
  document.addEventListener('click', function (event) {
    var button = event.target.closest('[data-copy], [data-copy-from]');
    if (!button) return;
    var text = button.dataset.copy;
    if (button.dataset.copyFrom) {
      var input = document.getElementById(button.dataset.copyFrom);
      text = input.value;
      input.select();
    }
    var done = function () {
      var label = button.textContent;
      button.textContent = 'Copied';
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { document.execCommand('copy'); done(); });
    } else {
      document.execCommand('copy');
      done();
    }
  });

  // Forms that ask before they destroy something.
  document.addEventListener('submit', function (event) {
    var message = event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // A select that reloads the page when it changes. Arrowing through a closed select changes
  // it at every key press in some browsers: a change made by keys applies on Enter or when the
  // select is left, never on the first arrow.
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

  // Filters apply as soon as they are chosen.
  document.querySelectorAll('[data-autosubmit]').forEach(function (select) {
    onChosen(select, function () { select.form.submit(); });
  });

  // On a narrow window the sections are one row that scrolls sideways: the current one is
  // brought into the middle of it where it would be out of view (only Chromium does that from
  // the CSS). Only the row scrolls; the page does not move.
  var currentSection = document.querySelector('.top nav a[aria-current="page"]');
  var sectionRow = currentSection && currentSection.closest('nav');
  if (sectionRow && sectionRow.scrollWidth > sectionRow.clientWidth) {
    var rowBox = sectionRow.getBoundingClientRect();
    var linkBox = currentSection.getBoundingClientRect();
    if (linkBox.left < rowBox.left || linkBox.right > rowBox.right) {
      sectionRow.scrollLeft += (linkBox.left + linkBox.right - rowBox.left - rowBox.right) / 2;
    }
  }

  // The flow builder has its own script (builder.js).

  // Connection form: show the fields of the chosen type only.
  document.querySelectorAll('form[data-type-switch]').forEach(function (form) {
    var type = form.querySelector('select[name="type"]');
    var apply = function () {
      form.querySelectorAll('[data-for-types]').forEach(function (el) {
        el.hidden = el.dataset.forTypes.split(' ').indexOf(type.value) < 0;
      });
    };
    type.addEventListener('change', apply);
    apply();
  });
})();
