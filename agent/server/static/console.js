// Progressive enhancement only: every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  // Whole queue rows are clickable (the policy link still works without JS).
  document.querySelectorAll("tr[data-href]").forEach((row) => {
    row.addEventListener("click", (event) => {
      if (event.target.closest("a, button, input, select, textarea")) return;
      window.location.assign(row.dataset.href);
    });
  });
  // Show the reason / assignee fields only for the action that takes them.
  const action = document.getElementById("action");
  if (action) {
    const sync = () => {
      document.querySelectorAll("[data-for-action]").forEach((el) => {
        el.classList.toggle("hidden", el.dataset.forAction !== action.value);
      });
    };
    action.addEventListener("change", sync);
    sync();
  }
});
