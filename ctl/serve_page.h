/* serve_page.h - the page `rvfctl serve` shows at / when the store has no
 * dashboard of its own: status, a to-scale map of the segments by type,
 * the witness chain.  Segments are drawn at their offsets, to scale;
 * bytes no listed segment covers (older manifests, dead rows) show hatched.  Plain HTML and JavaScript, no external resources;
 * it marks <body data-state> "ready" (or "error: ...") for tests. */
#ifndef RVFCTL_SERVE_PAGE_H
#define RVFCTL_SERVE_PAGE_H

static const char SERVE_PAGE[] =
"<!doctype html>\n"
"<html lang=\"en\"><head><meta charset=\"utf-8\"><title>rvf store</title>\n"
"<style>\n"
"body{font-family:sans-serif;margin:1.5em;color:#222}\n"
"table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}\n"
"#map{position:relative;width:100%;height:48px;border:1px solid #888;margin:.5em 0;background:repeating-linear-gradient(45deg,#eee,#eee 4px,#fff 4px,#fff 8px)}\n"
"#map div{position:absolute;top:0;height:100%;min-width:1px;box-sizing:border-box;border-right:1px solid #fff}\n"
".legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}\n"
"li{font-family:monospace;font-size:12px;word-break:break-all}\n"
"</style></head>\n"
"<body data-state=\"loading\">\n"
"<h1>RVF store</h1>\n"
"<h2>Status</h2><table id=\"status\"></table>\n"
"<h2>Segments <small id=\"segcount\"></small></h2><div id=\"map\"></div><div class=\"legend\" id=\"legend\"></div>\n"
"<table id=\"segtable\"><thead><tr><th>#</th><th>type</th><th>offset</th><th>bytes</th><th>hash</th></tr></thead><tbody></tbody></table>\n"
"<h2>Witness chain</h2><ol id=\"witness\"></ol>\n"
"<script>\n"
"const COLORS={vec:'#4e79a7',manifest:'#f28e2b',witness:'#59a14f',journal:'#e15759',meta:'#76b7b2',kernel:'#edc948',ebpf:'#b07aa1',wasm:'#ff9da7',dashboard:'#9c755f',profile:'#bab0ac',cow_map:'#8cd17d',membership:'#86bcb6',index:'#d37295',refcount:'#fabfd2',signature:'#499894'};\n"
"function color(t){return COLORS[t]||'#999';}\n"
"function cell(tr,txt,tag){const c=document.createElement(tag||'td');c.textContent=txt;tr.appendChild(c);}\n"
"async function get(u){const r=await fetch(u);if(!r.ok)throw new Error(u+': HTTP '+r.status);return r.json();}\n"
"async function main(){\n"
" const st=await get('/v1/status');\n"
" const t=document.getElementById('status');\n"
" for(const k of Object.keys(st)){const tr=document.createElement('tr');cell(tr,k,'th');cell(tr,String(st[k]));t.appendChild(tr);}\n"
" const segs=await get('/v1/segments');\n"
" document.getElementById('segcount').textContent='('+segs.segments.length+', '+segs.file_size+' bytes)';\n"
" const map=document.getElementById('map'),body=document.querySelector('#segtable tbody'),seen={};\n"
" segs.segments.forEach((s,i)=>{\n"
"  const d=document.createElement('div');const bytes=64+s.payload_length;\n"
"  d.style.left=(100*s.offset/segs.file_size)+'%';d.style.width=(100*bytes/segs.file_size)+'%';d.style.background=color(s.type);\n"
"  d.title=s.type+' @'+s.offset+' ('+bytes+' bytes)';d.dataset.type=s.type;map.appendChild(d);seen[s.type]=1;\n"
"  const tr=document.createElement('tr');cell(tr,String(i+1));cell(tr,s.type);cell(tr,String(s.offset));cell(tr,String(bytes));cell(tr,s.content_hash_algo);body.appendChild(tr);});\n"
" const lg=document.getElementById('legend');\n"
" for(const k of Object.keys(seen)){const sp=document.createElement('span');const i=document.createElement('i');i.style.background=color(k);sp.appendChild(i);sp.appendChild(document.createTextNode(k));lg.appendChild(sp);}\n"
" const w=await get('/v1/witness');const ol=document.getElementById('witness');\n"
" for(const e of w.entries){const li=document.createElement('li');li.textContent=e.time+' '+e.kind+' '+e.action+' ['+e.link+']';ol.appendChild(li);}\n"
" if(!w.entries.length){const li=document.createElement('li');li.textContent='(no witness entries)';ol.appendChild(li);}\n"
" document.body.dataset.state='ready';\n"
"}\n"
"window.addEventListener('error',e=>{document.body.dataset.state='error: '+e.message;});\n"
"main().catch(e=>{document.body.dataset.state='error: '+e.message;});\n"
"</script></body></html>\n";

#endif
