// Placeholder for the web client (built into web/dist by the web client's own build). It only
// shows that the page and its script were served; the real client replaces this file.
document.getElementById("app").textContent = "chinwag: the web client is not built yet.";
