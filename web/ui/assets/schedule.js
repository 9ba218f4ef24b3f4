// The schedule editor: shows the fields of the chosen kind and refreshes the next fire times
// (computed by the server, GET /ui/schedule-preview) as the schedule is edited. Without this
// script every field is sent and "Show the next fire times" re-renders the page.
(function () {
  'use strict';

  document.querySelectorAll('[data-schedule-editor]').forEach(function (editor) {
    var kind = editor.querySelector('[name="schedule.kind"]');
    var cron = editor.querySelector('[name="schedule.cron"]');
    var shownCron = editor.querySelector('[data-schedule-cron]');
    var fires = editor.querySelector('[data-schedule-fires]');
    var error = editor.querySelector('[data-schedule-error]');
    var never = editor.querySelector('[data-schedule-never]');
    var timer = null;
    var asked = 0;

    var showFields = function () {
      editor.querySelectorAll('[data-kinds]').forEach(function (el) {
        el.hidden = el.dataset.kinds.split(' ').indexOf(kind.value) < 0;
      });
    };

    var render = function (answer) {
      shownCron.textContent = answer.cron || '';
      error.textContent = answer.error || '';
      error.hidden = !answer.error;
      never.hidden = !answer.never;
      fires.replaceChildren.apply(fires, (answer.fires || []).map(function (fire) {
        var item = document.createElement('li');
        var time = document.createElement('time');
        time.dateTime = fire.at;
        time.textContent = fire.label;
        item.appendChild(time);
        return item;
      }));
    };

    var refresh = function () {
      var query = new URLSearchParams();
      editor.querySelectorAll('[name^="schedule."]').forEach(function (field) {
        query.append(field.name, field.value);
      });
      query.append('readIn', editor.dataset.readIn);
      var mine = ++asked;
      fetch('/ui/schedule-preview?' + query.toString(), { credentials: 'same-origin' })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (answer) { if (answer && mine === asked) render(answer); })
        .catch(function () {});
    };

    var soon = function () {
      clearTimeout(timer);
      timer = setTimeout(refresh, 200);
    };

    kind.addEventListener('change', function () {
      // A cron expression starts from the schedule chosen so far.
      if (kind.value === 'cron' && shownCron.textContent) cron.value = shownCron.textContent;
      showFields();
      refresh();
    });
    editor.addEventListener('input', soon);
    editor.addEventListener('change', function (event) { if (event.target !== kind) soon(); });
    showFields();
  });
})();
