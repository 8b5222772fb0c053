// The imports page: a file dropped anywhere on the drop zone is uploaded at once.
(() => {
  "use strict";
  const form = document.getElementById("import-form");
  if (!form) return;
  const zone = form.querySelector(".drop-zone");
  const input = form.elements.file;
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("over"); });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (!event.dataTransfer.files.length) return;
    input.files = event.dataTransfer.files;
    form.requestSubmit();
  });
})();
