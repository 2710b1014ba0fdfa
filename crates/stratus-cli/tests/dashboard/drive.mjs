// Drives the Stratus dashboard in headless Chromium for tests/dashboard.rs, step by
// step: the Rust test deploys and invokes between steps. Protocol: this script
// prints one JSON object per line on stdout ({"step": …}); the test answers with one
// line on stdin when it has done its part. Any failure prints {"error": …} and exits 1.
//
// Environment: STRATUS_URL, STRATUS_KEY, STRATUS_SECRET, CHROMIUM (executable),
// PUPPETEER_DIR (a node_modules holding puppeteer-core), SCREENSHOT (png path),
// MARKER (a text the function logs).
//
// Steps: signed-in → (deployed NAME) → seen → (invoked N) → checked →
// (dead-lettered {"function","payload","queue","body"}) → done.
import { createRequire } from "node:module";
import readline from "node:readline";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const require = createRequire(env("PUPPETEER_DIR") + "/");
const puppeteer = require("puppeteer-core");

const emit = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function next() {
  const r = await lines.next();
  if (r.done) throw new Error("the test closed stdin");
  return r.value.trim();
}

const url = env("STRATUS_URL");
let browser;
const pageErrors = [];
try {
  browser = await puppeteer.launch({
    executablePath: env("CHROMIUM"),
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 1440, height: 1100 });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.setDefaultTimeout(30000);

  await page.goto(url + "/ui", { waitUntil: "domcontentloaded" });
  await page.waitForSelector("#login-form", { visible: true });

  // A wrong secret is refused with a clear message.
  await page.type("#login-key", env("STRATUS_KEY"));
  await page.type("#login-secret", "not-the-secret");
  await page.click("#login-submit");
  await page.waitForSelector("#login-error", { visible: true });
  const refused = await page.$eval("#login-error", (e) => e.textContent);
  const dashboardAfterWrong = await page.$eval("#dashboard", (e) => !e.hidden);

  // The right one opens the dashboard.
  await page.click("#login-secret", { clickCount: 3 });
  await page.type("#login-secret", env("STRATUS_SECRET"));
  await page.click("#login-submit");
  await page.waitForSelector("#dashboard", { visible: true });
  const whoami = await page.$eval("#whoami", (e) => e.textContent);
  const cookies = await browser.cookies();
  const session = cookies.find((c) => c.name === "stratus_session");
  // The session cookie is out of the page's reach (HttpOnly).
  const scriptSeesCookie = await page.evaluate(() => document.cookie.includes("stratus_session"));
  emit({
    step: "signed-in",
    refused,
    dashboardAfterWrong,
    whoami,
    httpOnly: !!session && session.httpOnly,
    sameSite: session && session.sameSite,
    scriptSeesCookie,
  });

  // The test deploys a function with the CLI; it appears without a reload.
  const deployed = await next();
  const name = deployed.replace(/^deployed /, "");
  const row = `#fn-table tbody tr[data-name="${name}"]`;
  await page.waitForSelector(row, { visible: true });
  const count = () =>
    page.$eval(row + " .c-invocations", (e) => Number(e.textContent.replace(/[^0-9]/g, "")));
  emit({ step: "seen", invocations: await count() });

  // The test invokes it; the count rises on the page by itself.
  const invoked = Number((await next()).replace(/^invoked /, ""));
  await page.waitForFunction(
    (sel, n) => {
      const c = document.querySelector(sel);
      return c && Number(c.textContent.replace(/[^0-9]/g, "")) >= n;
    },
    {},
    row + " .c-invocations",
    invoked,
  );
  const invocations = await count();

  // Its logs, filtered on the marker it prints.
  await page.click(row);
  await page.waitForSelector("#detail", { visible: true });
  await page.type("#log-filter", env("MARKER"));
  await page.waitForFunction(
    (m) => Array.from(document.querySelectorAll("#logs-list .log-line")).some((l) => l.textContent.includes(m)),
    {},
    env("MARKER"),
  );
  const logLines = await page.$$eval("#logs-list .log-line", (ls) => ls.map((l) => l.textContent));
  const detailTitle = await page.$eval("#detail-title", (e) => e.textContent);
  // Charts and autoscaling render (with data, or "no data yet" where the server has none).
  await page.waitForSelector("#charts .chart");
  // The invocations chart counts them all (the page re-reads the series every 10 s),
  // and the autoscaling panel shows the function's scalable target.
  await page.waitForFunction(
    (n) => Number(document.querySelector('#charts .chart[data-metric="Invocations"]')?.dataset.total) >= n,
    { timeout: 45000 },
    invoked,
  );
  await page.waitForFunction(
    (fn) => document.querySelector("#autoscaling").textContent.includes(fn + ":provisioned"),
    { timeout: 45000 },
    name,
  );
  const charts = await page.$$eval("#charts .chart", (cs) =>
    cs.map((c) => ({
      metric: c.dataset.metric,
      drawn: !!c.querySelector("svg path"),
      total: c.dataset.total === undefined ? null : Number(c.dataset.total),
      note: c.querySelector(".nodata")?.textContent || null,
    })),
  );
  const autoscaling = await page.$eval("#autoscaling", (e) => e.textContent);
  emit({ step: "checked", invocations, logLines, detailTitle, charts, autoscaling });

  // The test dead-letters an async event and an SQS message; both appear in the
  // dead-letter panel without a reload.
  const dead = JSON.parse((await next()).replace(/^dead-lettered /, ""));
  await page.select("#dlq-function", dead.function);
  await page.waitForFunction(
    (p) => Array.from(document.querySelectorAll("#dead-letters .dl pre")).some((e) => e.textContent === p),
    { timeout: 45000 },
    dead.payload,
  );
  const asyncDeadLetters = await page.$$eval("#dead-letters .dl", (ds) => ds.map((d) => d.textContent));
  const queueBox = `#dlq-queues .dlq-queue[data-queue="${dead.queue}"]`;
  await page.waitForFunction(
    (sel, b) => Array.from(document.querySelectorAll(sel + " .sqs-dl pre")).some((e) => e.textContent === b),
    { timeout: 45000 },
    queueBox,
    dead.body,
  );
  const queueDeadLetters = await page.$eval(queueBox, (e) => e.textContent);
  // The tiles follow the overview, read every 3 s: wait for both dead letters to
  // count there (the test checks the value read after).
  const tile = (label) =>
    Array.from(document.querySelectorAll("#tiles .tile")).find((t) => t.querySelector(".l").textContent === label)?.querySelector(".v").textContent;
  await page
    .waitForFunction(
      (label) =>
        Array.from(document.querySelectorAll("#tiles .tile")).find((t) => t.querySelector(".l").textContent === label)?.querySelector(".v").textContent === "2",
      { timeout: 15000 },
      "Dead letters",
    )
    .catch(() => {});
  const tiles = { "Dead letters": await page.evaluate(tile, "Dead letters") };
  // Clear the log filter so the screenshot shows the function's whole recent log.
  await page.click("#log-filter", { clickCount: 3 });
  await page.keyboard.press("Backspace");
  await new Promise((r) => setTimeout(r, 1500));
  await page.screenshot({ path: env("SCREENSHOT"), fullPage: true });
  emit({ step: "done", asyncDeadLetters, queueDeadLetters, deadLetterTile: tiles["Dead letters"], pageErrors });
  await browser.close();
  process.exit(0);
} catch (e) {
  emit({ error: String(e && e.stack ? e.stack : e), pageErrors });
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
