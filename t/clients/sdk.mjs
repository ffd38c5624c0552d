// The official openai SDK against the gateway, as an application would use
// it. One scenario per run; prints one JSON line with what the SDK returned
// (or the error it raised), for t/api/13_clients.t to check.
//
//   node sdk.mjs BASE_URL KEY MODEL SCENARIO
import OpenAI from 'openai';

const [baseURL, apiKey, model, scenario] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 20000 });
const tools = [{
  type: 'function', name: 'get_weather', description: 'Weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
}];

const scenarios = {
  // responses.create: the SDK computes output_text from output
  async 'responses.create'() {
    const r = await client.responses.create({ model, instructions: 'Be brief.', input: 'Say hi' });
    return { id: r.id, status: r.status, output_text: r.output_text, usage: r.usage };
  },
  // responses.stream with its helpers: the accumulator checks the event order
  async 'responses.stream'() {
    const stream = client.responses.stream({ model, input: 'Say hi' });
    let deltas = '';
    stream.on('response.output_text.delta', (e) => { deltas += e.delta; });
    const r = await stream.finalResponse();
    return { id: r.id, status: r.status, output_text: r.output_text, deltas, usage: r.usage };
  },
  // a function call, then its output sent back in the next turn
  async 'responses.tools'() {
    const first = await client.responses.stream({ model, input: 'Weather in Oslo?', tools }).finalResponse();
    const call = first.output.find((i) => i.type === 'function_call');
    const second = await client.responses.create({
      model, tools,
      input: [{ role: 'user', content: 'Weather in Oslo?' }, ...first.output,
              { type: 'function_call_output', call_id: call.call_id, output: '{"temp_c":3}' }],
    });
    return { call: { type: call.type, id: call.id, call_id: call.call_id, name: call.name, arguments: call.arguments },
             second: { status: second.status, output_text: second.output_text } };
  },
  async 'chat.create'() {
    const r = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Say hi' }] });
    return { object: r.object, content: r.choices[0].message.content, finish: r.choices[0].finish_reason, usage: r.usage };
  },
  // chat.completions.stream: strict about role, finish_reason and tool deltas
  async 'chat.stream'() {
    const stream = client.chat.completions.stream({
      model, messages: [{ role: 'user', content: 'Weather in Oslo?' }], stream_options: { include_usage: true },
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: tools[0].parameters } }],
    });
    const r = await stream.finalChatCompletion();
    const m = r.choices[0].message;
    return { content: m.content, finish: r.choices[0].finish_reason,
             tool_calls: (m.tool_calls || []).map((t) => ({ id: t.id, name: t.function.name, arguments: t.function.arguments })),
             usage: r.usage };
  },
};

try {
  const result = await scenarios[scenario]();
  console.log(JSON.stringify({ ok: true, result }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e && e.message || e), status: e && e.status,
                               code: e && e.code }));
}
