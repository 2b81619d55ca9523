// Instant filtering and arrow-key movement for the picker. Without this script the
// search is a plain GET form and the categories are links, so the page works anyway.
(function () {
  "use strict";
  var input = document.querySelector("[data-picker-input]");
  var list = document.getElementById("picker-list");
  var count = document.querySelector("[data-picker-count]");
  var categoryField = document.querySelector("[data-picker-category]");
  if (!input || !list || !count) return;
  var items = Array.prototype.slice.call(list.querySelectorAll("li[data-search]"));
  var links = Array.prototype.slice.call(document.querySelectorAll(".categories a[data-category]"));
  var category = categoryField ? categoryField.value : "";

  function visibleButtons() {
    return items.filter(function (item) { return !item.hidden; })
      .map(function (item) { return item.querySelector("button"); });
  }

  function filter() {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    items.forEach(function (item) {
      var text = item.getAttribute("data-search");
      var match = (!category || item.getAttribute("data-category") === category) &&
        words.every(function (word) { return text.indexOf(word) !== -1; });
      item.hidden = !match;
      if (match) shown += 1;
    });
    var template = shown === 0 ? "data-none" : shown === 1 ? "data-one" : "data-many";
    count.textContent = count.getAttribute(template).replace("{n}", String(shown));
  }

  input.addEventListener("input", filter);
  input.addEventListener("keydown", function (event) {
    if (event.key === "ArrowDown") {
      var buttons = visibleButtons();
      if (buttons.length) { event.preventDefault(); buttons[0].focus(); }
    } else if (event.key === "Escape" && input.value) {
      event.preventDefault();
      input.value = "";
      filter();
    }
  });
  // The search button is only needed without this script; keep Enter from reloading.
  var form = document.querySelector("[data-picker-search]");
  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var buttons = visibleButtons();
      if (buttons.length === 1) buttons[0].focus();
    });
  }
  list.addEventListener("keydown", function (event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    var buttons = visibleButtons();
    var index = buttons.indexOf(document.activeElement);
    if (index === -1) return;
    event.preventDefault();
    if (event.key === "ArrowDown" && index < buttons.length - 1) buttons[index + 1].focus();
    else if (event.key === "ArrowUp") (index === 0 ? input : buttons[index - 1]).focus();
  });
  links.forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      category = link.getAttribute("data-category");
      if (categoryField) categoryField.value = category;
      links.forEach(function (other) {
        if (other === link) other.setAttribute("aria-current", "true");
        else other.removeAttribute("aria-current");
      });
      filter();
    });
  });
})();
