// app.js: the console's shell — sign-in, who is signed in and over which
// area, the language switch, navigation and a hash router that loads each
// screen's module when it is first opened.

import { api, setCSRF, syncTime } from './api.js';
import { t, loadLanguage, savedLanguage, language } from './i18n.js';
import { h, fill, field, errorBox, lowerFirst, toast } from './ui.js';

const root = document.getElementById('app');

// Screens: hash path → module, the action needed to see it in the menu,
// and the menu key. Hidden items are a courtesy; the API enforces access.
const screens = [
  { path: 'overview', module: './views/overview.js', key: 'nav.overview' },
  { path: 'clusters', module: './views/clusters.js', key: 'nav.clusters' },
  { path: 'library', module: './views/library.js', key: 'nav.library' },
  { path: 'programme', module: './views/programme.js', key: 'nav.programme' },
  { path: 'deliveries', module: './views/deliveries.js', key: 'nav.programme', hidden: true },
  { path: 'reports', module: './views/reports.js', key: 'nav.reports' },
  { path: 'alarms', module: './views/alarms.js', key: 'nav.alarms' },
  { path: 'audit', module: './views/audit.js', key: 'nav.audit', action: 'audit.read' },
  { path: 'admin', module: './views/admin.js', key: 'nav.admin', anyOf: ['users.manage', 'areas.manage', 'nodes.manage'] },
  { path: 'live', module: './views/live.js', key: 'nav.live', anyOf: ['schedule', 'emergency'] },
  { path: 'emergency', module: './views/emergency.js', key: 'nav.emergency', action: 'emergency', emergency: true },
  { path: 'account', module: './views/account.js', key: 'account.title', hidden: true },
];

/** Context is what every screen gets: the user, their areas, helpers. */
class Context {
  constructor(me) {
    this.me = me;
    this.areas = [];
    this.areaByID = new Map();
    this.aboveByID = new Map(); // names of the areas above the user's own
  }
  may(action) { return (this.me.actions || []).includes(action); }
  async loadAreas() {
    const { areas, above } = await api('GET', '/areas');
    this.areas = areas;
    this.areaByID = new Map(areas.map((a) => [a.id, a]));
    this.aboveByID = new Map((above || []).map((a) => [a.id, a]));
  }
  areaName(id) { const a = this.areaByID.get(id) || this.aboveByID.get(id); return a ? a.name : id; }
  /** roots are the top areas the user sees: their own, or the tree's roots. */
  roots() { return this.areas.filter((a) => !a.parent || !this.areaByID.has(a.parent)); }
  /** depth is how far below the user's roots an area lies. */
  depth(id) {
    let d = 0;
    for (let a = this.areaByID.get(id); a && a.parent && this.areaByID.has(a.parent); a = this.areaByID.get(a.parent)) d++;
    return d;
  }
  /** areaOptions are [id, indented name] pairs in tree order. */
  areaOptions() {
    const kids = new Map();
    for (const a of this.areas) {
      const p = a.parent && this.areaByID.has(a.parent) ? a.parent : '';
      if (!kids.has(p)) kids.set(p, []);
      kids.get(p).push(a);
    }
    const out = [];
    const walk = (p, d) => {
      for (const a of kids.get(p) || []) {
        out.push([a.id, '\u00a0\u00a0'.repeat(d) + a.name]);
        walk(a.id, d + 1);
      }
    };
    walk('', 0);
    return out;
  }
  /** within reports whether area lies in (or is) root. */
  within(area, root) {
    for (let a = area; a; a = (this.areaByID.get(a) || {}).parent) if (a === root) return true;
    return false;
  }
  /**
   * covers reports whether every one of areas lies in the user's own area
   * (any, for a user over the whole tree): the API refuses to stop,
   * cancel or approve what reaches beyond it, so the button is offered
   * only then.
   */
  covers(areas) { return areas.every((a) => !this.me.area || this.within(a, this.me.area)); }
  /** outermost keeps of areas those not inside another one of them. */
  outermost(areas) { return areas.filter((a) => !areas.some((o) => o !== a && this.within(a, o))); }
  /** defaultArea is the user's own area, or the first root. */
  defaultArea() { return this.me.area || (this.roots()[0] || {}).id || ''; }
  /** scope says who the user is over which area: "Cán bộ xã Lập Lễ". */
  scope() {
    const name = this.me.area ? this.areaName(this.me.area) : t('scope.whole');
    const area = language() === 'vi' ? lowerFirst(name) : name;
    return t('scope.' + this.me.role, { area });
  }
}

let ctx = null;
let cleanup = null;

// A blocked style or script is a bug in the console: say it where tests
// and developers look.
document.addEventListener('securitypolicyviolation', (e) => console.error('CSP blocked', e.violatedDirective, e.blockedURI));

async function boot() {
  window.addEventListener('loaxa:signed-out', () => { if (ctx) { ctx = null; showLogin(t('login.expired')); } });
  // Only hashes that name a screen route: another (an in-page link's
  // "#main") leaves the screen, and what was typed in it, as it is.
  window.addEventListener('hashchange', () => { if (/^(#\/|#?$)/.test(location.hash)) route(); });
  // The skip link moves the focus into the screen; followed as a link it
  // would change the hash the screens are routed on.
  document.querySelector('a.skip').addEventListener('click', (e) => {
    e.preventDefault();
    const main = document.getElementById('main');
    if (main) main.focus();
  });
  // The words and who is signed in, in parallel: one round trip, not two.
  const session = api('GET', '/auth/session');
  session.catch(() => {}); // handled below, after the words are in
  await loadLanguage(savedLanguage());
  try {
    await start(await session);
  } catch (err) {
    if (err.status === 401) showLogin();
    else fill(root, errorBox(err));
  }
}

// lastUser is who was signed in last in this tab (kept over a reload):
// the screen in the address is theirs. Another user signing in after them
// (a shared PC at the commune office) opens the overview, not the page the
// last one left; the same user signing in again (after a timeout) keeps it.
const LAST_USER = 'loaxa.lastUser';
function lastUser() {
  try { return sessionStorage.getItem(LAST_USER) || ''; } catch { return ''; }
}

async function start(me) {
  setCSRF(me.csrf_token);
  try { sessionStorage.setItem(LAST_USER, me.username); } catch { /* decided by the page's hash alone */ }
  ctx = new Context(me);
  await Promise.all([ctx.loadAreas(), syncTime()]);
  shell();
  route();
}

function langSwitch(onChange) {
  const other = language() === 'vi' ? 'en' : 'vi';
  return h('button', {
    type: 'button', class: 'secondary lang', lang: other,
    'aria-label': t('lang.switch'),
    onclick: async () => { await loadLanguage(other); onChange(); },
  }, other === 'en' ? 'English' : 'Tiếng Việt');
}

function showLogin(message) {
  // A screen still loading is no longer the current one: signed out, it
  // would ask on without a session and fail with "Sign in first".
  routing++;
  if (cleanup) { cleanup(); cleanup = null; }
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const status = h('div', { 'aria-live': 'assertive' }, message ? h('p', { class: 'error' }, message) : null);
  const submit = h('button', { type: 'submit' }, t('login.submit'));
  const form = h('form', {
    class: 'panel', onsubmit: async (e) => {
      e.preventDefault();
      submit.disabled = true;
      fill(status);
      try {
        const me = await api('POST', '/auth/session', { username: user.value.trim(), password: pass.value });
        pass.value = '';
        // Replaced, not a new hash: no hashchange to route twice.
        const before = lastUser();
        if (before && before !== me.username) history.replaceState(null, '', '#/overview');
        await start(me);
      } catch (err) {
        fill(status, errorBox(err));
      } finally {
        submit.disabled = false;
      }
    },
  },
  field(t('login.username'), user),
  field(t('login.password'), pass),
  h('div', { class: 'row', style: 'margin-top:1rem' }, submit, h('span', { class: 'right' }, langSwitch(() => showLogin(message)))),
  status);
  fill(root, h('main', { id: 'main', class: 'login', tabindex: '-1' },
    h('h1', {}, t('app.name')),
    h('p', { class: 'muted', style: 'text-align:center' }, t('login.intro')),
    form));
  user.focus();
}

function shell() {
  const nav = h('nav', { class: 'side', 'aria-label': t('nav.label') },
    h('ul', {}, screens.filter(visible).map((sc) => h('li', {},
      h('a', { href: '#/' + sc.path, class: sc.emergency ? 'nav-emergency' : '', dataset: { path: sc.path } }, t(sc.key))))));
  const logout = h('button', {
    type: 'button', onclick: async () => {
      try { await api('POST', '/auth/logout'); } catch { /* signed out anyway */ }
      ctx = null;
      setCSRF('');
      showLogin();
    },
  }, t('login.logout'));
  fill(root,
    h('header', { class: 'top' },
      h('div', { class: 'brand' }, h('img', { src: '/static/icon.svg', alt: '', width: 28, height: 28 }), t('app.name')),
      h('div', { class: 'who', id: 'who' }, h('strong', { id: 'scope' }, ctx.scope()), h('small', {}, h('a', { href: '#/account', class: 'account-link', title: t('account.title') }, ctx.me.username), ` · ${t('role.' + ctx.me.role)}`)),
      // Signed out while the words loaded, the sign-in form is redrawn in
      // them: there is no user to draw the menu for.
      langSwitch(() => { if (ctx) { shell(); route(); } else showLogin(); }),
      logout),
    h('div', { class: 'layout' }, nav, h('main', { id: 'main', tabindex: '-1' })));
}

function visible(sc) {
  if (sc.hidden) return false;
  if (sc.action && !ctx.may(sc.action)) return false;
  if (sc.anyOf && !sc.anyOf.some((a) => ctx.may(a))) return false;
  return true;
}

// routing counts navigations: a screen's render that ends after the
// officer moved on is no longer the current one.
let routing = 0;

// ownHistoryEntry marks the tab's history entry being shown as the
// signed-in user's. The tab's history keeps the screens of whoever used it
// before (a shared PC at the commune office): Back after another user
// signed in went to them, drawn with the new user's rights. An entry of
// another user is replaced by the overview; one made before any user
// routed it (state null) becomes the current user's.
function ownHistoryEntry() {
  const owner = history.state && history.state.user;
  if (owner === ctx.me.username) return;
  // Replaced, not a new hash: no hashchange to route twice.
  if (owner) history.replaceState({ user: ctx.me.username }, '', '#/overview');
  else history.replaceState({ ...(history.state || {}), user: ctx.me.username }, '');
}

async function route() {
  if (!ctx) return;
  const gen = ++routing;
  ownHistoryEntry();
  const [path, ...params] = (location.hash.replace(/^#\/?/, '') || 'overview').split('/').map(decodeURIComponent);
  const sc = screens.find((x) => x.path === path) || screens[0];
  for (const a of root.querySelectorAll('nav.side a')) {
    if (a.dataset.path === sc.path || (sc.path === 'deliveries' && a.dataset.path === 'programme')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (cleanup) { cleanup(); cleanup = null; }
  // A confirmation asks about the screen it was opened on: left open (it
  // lives in the body, above every screen) it would ask over the next
  // one, and a yes would act on a form no longer shown. Closed, it
  // answers no.
  for (const dlg of document.querySelectorAll('dialog[open]')) dlg.close();
  // Each screen draws into a main of its own. A screen still loading when
  // the officer moves on (the overview's counts on a slow link) finishes
  // into the main it was given, which is no longer on the page, and never
  // over the screen that replaced it.
  const main = h('main', { id: 'main', tabindex: '-1' }, h('p', { class: 'loading' }, t('common.loading')));
  document.getElementById('main').replaceWith(main);
  document.title = `${t(sc.key)} — ${t('app.name')}`;
  try {
    const mod = await import(sc.module);
    const ret = await mod.render(ctx, main, params);
    if (gen !== routing) {
      if (typeof ret === 'function') ret(); // its streams and timers end with it
      return;
    }
    if (typeof ret === 'function') cleanup = ret;
  } catch (err) {
    if (gen !== routing) return;
    console.error(err);
    fill(main, errorBox(err));
    if (err.status === undefined) toast(String(err), true);
  }
}

boot();
