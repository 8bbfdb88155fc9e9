// Designer: the definition's text beside its graph (filled in below).
import { h } from '../lib/dom.js';
import { renderGraph } from '../lib/graph.js';

export async function mount(root, ctx, params) {
  const definition = params.id ? await ctx.api.get(`/workflows/${encodeURIComponent(params.id)}`) : {steps: []};
  if (params.id) ctx.setTitle(definition.name);
  const graph = h('div', {class: 'graph-pane'});
  root.append(graph);
  const view = renderGraph(graph, definition, {});
  return () => view.destroy();
}
