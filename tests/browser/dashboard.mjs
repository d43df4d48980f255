// Drives Corridor's operator dashboard in a real Chromium (Debian's, through playwright-core).
//
//   node tests/browser/dashboard.mjs <base url> <admin key> <payment id>
//
// The payment must have a dead step job. The script signs in, opens the payment's timeline,
// goes to the dead jobs, redrives that job and checks the confirmation and the audit entry,
// then signs out. Exit 0 when every check held; otherwise the failure is printed (and a
// screenshot saved when CORRIDOR_SCREENSHOT_DIR is set). tests/dashboard/browser.rs runs it.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, adminKey, paymentId] = process.argv.slice(2);
if (!base || !adminKey || !paymentId) {
  console.error("usage: node dashboard.mjs <base url> <admin key> <payment id>");
  process.exit(2);
}
const executablePath = process.env.CORRIDOR_CHROMIUM || "/usr/bin/chromium";
const shots = process.env.CORRIDOR_SCREENSHOT_DIR;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function screenshot(page, name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

const browser = await chromium.launch({
  executablePath,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(15_000);

const problems = [];
// Every request the dashboard makes stays on Corridor and never carries the key.
page.on("request", (r) => {
  if (r.url().includes(adminKey)) problems.push(`the admin key appears in a URL: ${r.url()}`);
  if (!r.url().startsWith(base)) problems.push(`a request left Corridor: ${r.url()}`);
});
// A CSP violation or script error shows up as a console error; failed loads are judged by
// their responses below (the wrong key's 401 is expected).
page.on("console", (m) => {
  if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
    problems.push(`console error: ${m.text()}`);
  }
});
let expectedFailures = 0;
page.on("response", (r) => {
  if (r.status() < 400) return;
  if (r.status() === 401 && r.url() === `${base}/dashboard/login` && expectedFailures > 0) {
    expectedFailures -= 1;
    return;
  }
  problems.push(`${r.status()} for ${r.url()}`);
});
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
const dialogs = [];
page.on("dialog", async (d) => {
  dialogs.push(d.message());
  await d.accept();
});

try {
  // Sign in: a wrong key first, then the admin key.
  await page.goto(`${base}/dashboard`);
  check((await page.locator("h1").textContent()) === "Sign in", "no sign-in form at /dashboard");
  await page.fill("#key", "ck_admin_this_is_not_the_key");
  expectedFailures = 1;
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  check(
    (await page.locator(".notice.bad").textContent()).includes("not the admin key"),
    "a wrong key was not refused",
  );
  await page.fill("#key", adminKey);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  check((await page.locator("h1").textContent()) === "Overview", "signing in did not open the overview");
  check(!page.url().includes(adminKey), "the key is in the address bar");

  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "corridor_session");
  check(session, "no session cookie");
  check(session.httpOnly, "the session cookie is not HttpOnly");
  check(session.sameSite === "Strict", `the session cookie is SameSite=${session.sameSite}`);
  check(session.path === "/dashboard", `the session cookie's path is ${session.path}`);
  check(
    !(await page.evaluate(() => document.cookie)).includes("corridor_session"),
    "scripts can read the session cookie",
  );
  check(
    (await page.locator("text=Payments by state").count()) === 1,
    "the overview has no payments-by-state table",
  );

  // Find the payment and open its timeline.
  await page.click("header nav >> text=Payments");
  await page.waitForURL(`${base}/dashboard/payments`);
  check((await page.locator("table.payments tbody tr").count()) === 1, "the payment list does not show the payment");
  await screenshot(page, "payments");
  await page.fill("input[name=q]", paymentId);
  await Promise.all([page.waitForNavigation(), page.click("form.filters button")]);
  check(
    page.url() === `${base}/dashboard/payments/${paymentId}`,
    `searching the id did not open its timeline: ${page.url()}`,
  );
  const timeline = await page.locator("ol.timeline li").count();
  check(timeline >= 2, `the timeline has ${timeline} entries`);
  const metadata = await page.locator("table.metadata td").first().textContent();
  check(metadata.includes("<img"), `the metadata is not shown as text: ${metadata}`);
  check((await page.evaluate(() => window.__pwned)) === undefined, "metadata ran as HTML");
  check((await page.locator("text=Retry current step").count()) === 1, "no retry button");
  check((await page.locator(".badge.s-dead").count()) >= 1, "the timeline does not show the dead job");
  await screenshot(page, "timeline");

  // Dead jobs: redrive the payment's job.
  await page.click("header nav >> text=Dead jobs");
  await page.waitForURL(`${base}/dashboard/jobs`);
  const row = page.locator("tr[data-job]", { hasText: paymentId });
  check((await row.count()) === 1, "the payment's job is not in the dead list");
  const jobId = await row.getAttribute("data-job");
  await screenshot(page, "dead-jobs");
  await Promise.all([page.waitForNavigation(), row.locator("button", { hasText: "Redrive" }).click()]);
  check(dialogs.length === 1, `expected one confirmation, got ${dialogs.length}`);
  const notice = await page.locator(".notice.ok").textContent();
  check(notice.includes(`Job ${jobId} is back in the queue`), `no confirmation: ${notice}`);
  check(page.url().startsWith(`${base}/dashboard/jobs`), `redrive ended on ${page.url()}`);

  // The overview's audit list names the dashboard.
  await page.click("header nav >> text=Overview");
  const audit = page.locator("tr", { hasText: "job.redrive" });
  check((await audit.count()) >= 1, "the redrive is not in the audit list");
  check((await audit.first().textContent()).includes("dashboard"), "the audit entry does not name the dashboard");
  await screenshot(page, "overview");

  // Pin a rate, then remove the pin.
  await page.click("header nav >> text=Rate pins");
  await page.waitForURL(`${base}/dashboard/rates`);
  await page.selectOption("select[name=pair]", "USD-EUR");
  await page.fill("input[name=rate]", "0.91");
  await Promise.all([page.waitForNavigation(), page.click("form.pin button")]);
  check(
    (await page.locator(".notice.ok").textContent()).startsWith("Rate pinned"),
    "pinning showed no confirmation",
  );
  const pinned = page.locator("table.rates tr", { hasText: "USD → EUR" });
  check((await pinned.textContent()).includes("0.91"), "the pin is not listed");
  await screenshot(page, "rates");
  await Promise.all([page.waitForNavigation(), pinned.locator("button", { hasText: "Unpin" }).click()]);
  check(
    (await page.locator(".notice.ok").textContent()).startsWith("Pin removed"),
    "unpinning showed no confirmation",
  );
  check(dialogs.length === 2, `expected two confirmations, got ${dialogs.length}`);

  // Sign out: the session is gone.
  await Promise.all([page.waitForNavigation(), page.click("form.signout button")]);
  check((await page.locator("h1").textContent()) === "Sign in", "signing out did not show the sign-in form");
  check(!(await context.cookies()).some((c) => c.name === "corridor_session"), "the cookie survived sign-out");
  await page.goto(`${base}/dashboard/jobs`);
  check(page.url() === `${base}/dashboard`, `a signed-out page did not redirect: ${page.url()}`);

  check(problems.length === 0, problems.join("\n"));
  console.log(`dashboard browser test passed (job ${jobId} redriven)`);
  await browser.close();
} catch (e) {
  console.error(`dashboard browser test failed at ${page.url()}: ${e.message}`);
  if (problems.length) console.error(problems.join("\n"));
  await screenshot(page, "failure").catch(() => {});
  await browser.close();
  process.exit(1);
}
