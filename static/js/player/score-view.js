// Engraved score: Verovio's WASM toolkit (served from static/vendor/verovio/) turns
// the MEI into SVG pages stacked in one scroll; element ids are the MEI xml:ids, so
// the notemap of the server points straight at them. Layout follows the width.

const VENDOR = new URL('../../vendor/verovio/', import.meta.url);

let toolkitPromise = null;

/** Load the Verovio toolkit once per page. */
export function loadToolkit() {
  if (!toolkitPromise) {
    toolkitPromise = (async () => {
      const [{ default: createVerovioModule }, { VerovioToolkit }] = await Promise.all([
        import(new URL('verovio-module.js', VENDOR).href),
        import(new URL('verovio.js', VENDOR).href),
      ]);
      const module = await createVerovioModule();
      return new VerovioToolkit(module);
    })();
  }
  return toolkitPromise;
}

export class ScoreView {
  constructor(container) {
    this.el = container;
    this.lit = new Map();   // element id -> number of sounding notes on it
    this.cache = new Map(); // element id -> Element
    this.width = 0;
    this.follow = true;
    this.handScrollUntil = 0;
    this.ownScroll = null;  // the view's own smooth scroll in flight: { lo, hi, until } (px, ms)
    this.pointerHeld = false;
    const byHand = () => { this.handScrollUntil = performance.now() + 4000; };
    for (const ev of ['wheel', 'touchmove']) window.addEventListener(ev, byHand, { passive: true });
    window.addEventListener('keydown', (ev) => { if (/^(Page|Arrow(Up|Down)|Home|End)/.test(ev.key)) byHand(); });
    // Any scroll the view did not start (the scrollbar, a link, a script) is the reader's too:
    // the view's own stays between where it started and its target, and ends in time.
    window.addEventListener('scroll', () => {
      const own = this.ownScroll;
      if (own && performance.now() < own.until && window.scrollY >= own.lo && window.scrollY <= own.hi) return;
      this.ownScroll = null;
      byHand();
    }, { passive: true });
    window.addEventListener('scrollend', () => { this.ownScroll = null; });
    // Never move the page under a pressed button: a click whose press and release land on
    // different elements is lost.
    window.addEventListener('pointerdown', () => { this.pointerHeld = true; }, { capture: true, passive: true });
    // On release the view catches up at once rather than at the next note: a long chord or a
    // rest would otherwise leave the music out of sight.
    for (const ev of ['pointerup', 'pointercancel']) {
      window.addEventListener(ev, () => {
        this.pointerHeld = false;
        if (this.follow) requestAnimationFrame(() => this.revealLit());
      }, { capture: true, passive: true });
    }
  }

  async load(meiText) {
    this.tk = await loadToolkit();
    this.tk.setOptions(this.options());
    if (!this.tk.loadData(meiText)) throw new Error('Verovio could not read the score.');
    this.draw();
    this.resizeObs = new ResizeObserver(() => {
      if (Math.abs(this.el.clientWidth - this.width) > 24) {
        clearTimeout(this.resizeTimer);
        this.resizeTimer = setTimeout(() => this.relayout(), 200);
      }
    });
    this.resizeObs.observe(this.el);
    this.el.addEventListener('click', (ev) => {
      const note = ev.target.closest && ev.target.closest('g.note, g.chord');
      if (note && this.onNoteClick) this.onNoteClick(note.id);
    });
  }

  options() {
    this.width = Math.max(320, this.el.clientWidth || 800);
    const scale = this.width < 700 ? 30 : 40;
    return {
      scale,
      pageWidth: Math.round((this.width * 100) / scale),
      pageHeight: Math.round((this.width * 1.3 * 100) / scale),
      adjustPageHeight: true,
      breaks: 'auto',
      svgViewBox: true,
      svgRemoveXlink: true,
      footer: 'none',
      header: this.width < 800 ? 'none' : 'auto',
      pageMarginLeft: 50,
      pageMarginRight: 50,
      pageMarginTop: 30,
      pageMarginBottom: 30,
    };
  }

  draw() {
    const pages = this.tk.getPageCount();
    const parts = [];
    for (let p = 1; p <= pages; p += 1) {
      parts.push(`<div class="pr-page" data-page="${p}">${this.tk.renderToSVG(p)}</div>`);
    }
    this.el.innerHTML = parts.join('');
    this.cache.clear();
    for (const id of this.lit.keys()) this.find(id)?.classList.add('pr-playing');
    this.pages = pages;
  }

  relayout() {
    this.tk.setOptions(this.options());
    this.tk.redoLayout();
    this.draw();
  }

  find(id) {
    let el = this.cache.get(id);
    if (el === undefined) {
      el = this.el.querySelector(`[id="${CSS.escape(id)}"]`);
      this.cache.set(id, el);
    }
    return el;
  }

  /** Light exactly the elements in `ids` (an iterable, repeats allowed); returns the newly lit ones. */
  setLit(ids) {
    const want = new Map();
    for (const id of ids) if (id) want.set(id, (want.get(id) || 0) + 1);
    const added = [];
    for (const id of this.lit.keys()) if (!want.has(id)) this.find(id)?.classList.remove('pr-playing');
    for (const id of want.keys()) {
      if (!this.lit.has(id)) {
        const el = this.find(id);
        if (el) { el.classList.add('pr-playing'); added.push(el); }
      }
    }
    this.lit = want;
    if (added.length && this.follow) this.reveal(added[0]);
    return added;
  }

  get litCount() {
    let n = 0;
    for (const id of this.lit.keys()) if (this.find(id)) n += 1;
    return n;
  }

  /** Reveal the first lit element still drawn, if any. */
  revealLit() {
    for (const id of this.lit.keys()) {
      const el = this.find(id);
      if (el) { this.reveal(el); return; }
    }
  }

  /** Scroll so that the system holding `el` is in view: only when it is not, while the
   * reader looks at the score (not at the takes or plots below it), has not just scrolled by
   * hand and is not pressing a button. */
  reveal(el) {
    if (this.pointerHeld || performance.now() < this.handScrollUntil) return;
    const top = 90; // room for the sticky transport bar
    const box = this.el.getBoundingClientRect();
    if (box.bottom < top + 40 || box.top > window.innerHeight - 40) return;
    const system = el.closest('.system') || el;
    const r = system.getBoundingClientRect();
    if (r.top < top || r.bottom > window.innerHeight) {
      const from = window.scrollY;
      const max = document.documentElement.scrollHeight - window.innerHeight;
      const to = Math.max(0, Math.min(max, from + r.top - top - 20));
      // 'scrollend' ends it sooner
      this.ownScroll = { lo: Math.min(from, to) - 2, hi: Math.max(from, to) + 2, until: performance.now() + 1500 };
      window.scrollTo({ top: to, behavior: 'smooth' });
    }
  }
}
