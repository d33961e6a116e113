// The overview's canvas chart: messages published and delivered per second, last 5 minutes.

const SPAN_S = 300;

// A top whose quarters (the grid lines) are round numbers too.
function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 4, 6, 8, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

// points: [{at (ISO time), published_per_s, delivered_per_s}], oldest first.
export function drawChart(canvas, points) {
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (!width || !height) return;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const style = getComputedStyle(canvas);
  const color = (name) => style.getPropertyValue(name).trim();

  // times relative to the newest sample: the browser's clock may differ from the broker's
  const newest = points.length ? Date.parse(points[points.length - 1].at) : 0;
  const series = (key) => points.map((p) => [(Date.parse(p.at) - newest) / 1000, p[key]]);
  const published = series("published_per_s");
  const delivered = series("delivered_per_s");
  let top = 1;
  for (const [, v] of published.concat(delivered)) top = Math.max(top, v);
  top = niceCeiling(top);

  const pad = { left: 48, right: 14, top: 10, bottom: 24 };
  const plotWidth = width - pad.left - pad.right;
  const plotHeight = height - pad.top - pad.bottom;
  const x = (t) => pad.left + plotWidth * (1 + t / SPAN_S);
  const y = (v) => pad.top + plotHeight * (1 - v / top);

  g.font = `12px ${style.fontFamily}`;
  g.fillStyle = color("--muted");
  g.strokeStyle = color("--grid");
  g.lineWidth = 1;
  g.textAlign = "right";
  g.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const value = (top * i) / 4;
    const at = Math.round(y(value)) + 0.5;
    g.beginPath();
    g.moveTo(pad.left, at);
    g.lineTo(width - pad.right, at);
    g.stroke();
    g.fillText(value >= 10 ? value.toFixed(0) : String(+value.toFixed(2)), pad.left - 8, at);
  }
  g.textAlign = "center";
  g.textBaseline = "top";
  const minuteStep = plotWidth < 320 ? 2 : 1;
  for (let minutes = 5; minutes >= 0; minutes -= 1) {
    if (minutes % minuteStep) continue;
    const label = minutes ? `-${minutes} min` : "now";
    g.fillText(label, Math.min(x(-minutes * 60), width - 16), height - pad.bottom + 6);
  }

  const plot = (data, name, dash) => {
    g.strokeStyle = color(name);
    g.setLineDash(dash);
    g.lineWidth = 2;
    g.lineJoin = "round";
    g.beginPath();
    let started = false;
    for (const [t, v] of data) {
      if (t < -SPAN_S) continue;
      if (started) g.lineTo(x(t), y(v));
      else g.moveTo(x(t), y(v));
      started = true;
    }
    g.stroke();
  };
  // delivered dashed on top: when every message goes straight out, the lines coincide
  plot(published, "--series-in", []);
  plot(delivered, "--series-out", [6, 4]);
}
