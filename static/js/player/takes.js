// The list of takes (performances) of this score, from takes.json: replay buttons
// and download links.

const FORMATS = [['mid', 'MIDI'], ['wav', 'WAV'], ['ogg', 'OGG'], ['csv', 'CSV']];

function fmtDate(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString();
}

export class TakesList {
  /**
   * @param {HTMLElement} listEl  an <ol> to fill
   * @param {(take) => void} onReplay
   */
  constructor(listEl, onReplay) {
    this.el = listEl;
    this.onReplay = onReplay;
    this.takes = [];
    this.current = null;
  }

  set(takes) {
    this.takes = takes;
    this.draw();
  }

  markCurrent(performanceId) {
    this.current = performanceId;
    for (const li of this.el.children) li.classList.toggle('pr-current', li.dataset.performanceId === performanceId);
  }

  draw() {
    this.el.replaceChildren();
    this.takes.forEach((take, k) => {
      const li = document.createElement('li');
      li.className = 'pr-take';
      li.dataset.performanceId = take.performance_id || '';
      li.dataset.jobId = take.job_id || '';
      li.dataset.state = take.state || '';
      const label = document.createElement('span');
      label.className = 'pr-take-label';
      const bits = [`Take ${k + 1}`];
      if (take.seed !== undefined && take.seed !== null) bits.push(`seed ${take.seed}`);
      if (take.n_notes) bits.push(`${take.n_notes} notes`);
      if (take.created) bits.push(fmtDate(take.created));
      label.textContent = bits.join(' · ');
      li.append(label);
      if (take.performance_id && take.notes_url) {
        const play = document.createElement('button');
        play.type = 'button';
        play.className = 'pr-take-play';
        play.textContent = 'Play';
        play.addEventListener('click', () => this.onReplay(take));
        li.append(play);
        const dl = document.createElement('span');
        dl.className = 'pr-downloads';
        for (const [key, name] of FORMATS) {
          const url = take.downloads && take.downloads[key];
          if (!url) continue;
          const a = document.createElement('a');
          a.href = url;
          a.textContent = name;
          a.setAttribute('download', '');
          a.className = `pr-dl-${key}`;
          dl.append(a);
        }
        li.append(dl);
      } else {
        const st = document.createElement('span');
        st.className = 'pr-take-state';
        st.textContent = take.state || '';
        li.append(st);
      }
      this.el.append(li);
    });
    if (this.current) this.markCurrent(this.current);
  }
}
