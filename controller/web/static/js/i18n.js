// i18n.js: Vietnamese first, English as a switch. The words live in
// /static/i18n/{vi,en}.json; a Go test keeps both with the same keys and
// checks that every key the modules use exists.

let dict = {};
let lang = 'vi';

/** loadLanguage fetches a dictionary and makes it current. */
export async function loadLanguage(l) {
  if (l !== 'vi' && l !== 'en') l = 'vi';
  // Same mode and credentials as the <link rel=preload> in index.html, so
  // the preloaded answer is used.
  const resp = await fetch(`/static/i18n/${l}.json`, { mode: 'cors', credentials: 'same-origin' });
  dict = await resp.json();
  lang = l;
  document.documentElement.lang = l;
  try { localStorage.setItem('loaxa.lang', l); } catch { /* private mode */ }
}

/** savedLanguage is the language chosen last time on this browser. */
export function savedLanguage() {
  try { return localStorage.getItem('loaxa.lang') || 'vi'; } catch { return 'vi'; }
}

/** language is the current language code. */
export function language() { return lang; }

/** locale is the BCP 47 locale for dates and numbers. */
export function locale() { return lang === 'vi' ? 'vi-VN' : 'en-GB'; }

/**
 * t translates key, filling {name} placeholders from vars. English says
 * counts with {name|one|other}: the one form when vars[name] is 1 (or
 * "1"), else the other, as in "{n} {n|cluster|clusters} will sound";
 * Vietnamese has no plural and does not use it.
 */
export function t(key, vars) {
  let s = dict[key];
  if (s === undefined) {
    console.warn('i18n: missing key', key);
    s = key;
  }
  if (vars) {
    s = s.replace(/\{(\w+)(?:\|([^|{}]*)\|([^|{}]*))?\}/g, (m, k, one, other) => {
      if (vars[k] === undefined) return m;
      if (one === undefined) return String(vars[k]);
      return String(vars[k]) === '1' ? one : other;
    });
  }
  return s;
}

/** has reports whether key exists (error codes, states). */
export function has(key) { return dict[key] !== undefined; }
