# Runs an exported Workato connector against a live timix server with the interpreter of the
# connector SDK in sdk.rb: the connection test, every pick list, every trigger polled twice with
# the platform keeping its closure in between (subscribed to and unsubscribed from webhooks too),
# and the actions the plan names between the two polls. Writes a JSON report; exits 1 on an error.
#
#   ruby tests/workato/run.rb <connector.rb> <plan.json> <report.json>
#
# plan.json: {"connection": {"base_url", "api_key"}, "hookTarget": "<url>",
#             "actions": [{"key", "input": {...}}]}
#
# With "paged": [{"trigger", "since", "between": [{"method", "path", "payload"}]}] instead, it
# only polls each trigger named there from `since` until it has no more (at most 20 polls), and
# sends the `between` requests after its first poll, as writes landing while a recipe pages
# through a backlog; the report has "paged": {trigger: {"polls", "events"}}.

require_relative 'sdk'

connector_file, plan_file, report_file = ARGV
connector = eval(File.read(connector_file), TOPLEVEL_BINDING.dup, connector_file) # rubocop:disable Security/Eval
plan = JSON.parse(File.read(plan_file))
connection = plan.fetch('connection')
runner = WorkatoSdk::Runner.new(connector, connection)
report = { 'pickLists' => {}, 'triggers' => {}, 'actions' => {}, 'hooks' => {} }

object_definitions = connector.fetch(:object_definitions, {}).to_h do |name, definition|
  [name.to_s, runner.run(definition[:fields], connection, {})]
end
field_names = ->(fields) { fields.map { |f| f[:name].to_s } }

if plan['paged']
  report = { 'paged' => {} }
  plan['paged'].each do |step|
    trigger = connector[:triggers][step['trigger'].to_sym] or raise "no trigger #{step['trigger']}"
    closure = nil
    seen = []
    events = []
    polls = []
    20.times do |i|
      sent_before = runner.log.size
      result = runner.run(trigger[:poll], connection, { 'since' => step['since'] }, closure)
      polls << { 'requests' => runner.log[sent_before..], 'nextPoll' => result[:next_poll] }
      result.fetch(:events).each do |record|
        id = runner.run(trigger[:dedup], record).to_s
        next if seen.include?(id)

        seen << id
        events << record
      end
      closure = WorkatoSdk.stored(result[:next_poll])
      if i.zero?
        step.fetch('between', []).each do |request|
          runner.public_send(request['method'], request['path'], request['payload']).response
        end
      end
      break unless result[:can_poll_more]
    end
    report['paged'][step['trigger']] = { 'polls' => polls, 'events' => events }
  end
  File.write(report_file, JSON.generate(report))
  exit
end

report['test'] = runner.run(connector[:test], connection)
connector.fetch(:pick_lists, {}).each do |name, pick_list|
  report['pickLists'][name.to_s] = runner.run(pick_list, connection)
end

# Each trigger's closure and the dedup keys of the events it gave, as the platform keeps them.
kept = Hash.new { |h, k| h[k] = { closure: nil, seen: [] } }
poll_all = lambda do |round|
  connector.fetch(:triggers, {}).each do |key, trigger|
    state = kept[key]
    polls = []
    events = []
    5.times do
      sent_before = runner.log.size
      closure = round.zero? && polls.empty? ? nil : WorkatoSdk.stored(state[:closure])
      result = runner.run(trigger[:poll], connection, {}, closure)
      next_poll = result[:next_poll]
      polls << {
        'requests' => runner.log[sent_before..],
        'closureClass' => closure.class.name,
        'nextPoll' => next_poll,
        'nextPollClass' => next_poll.class.name
      }
      result.fetch(:events).each do |record|
        id = runner.run(trigger[:dedup], record).to_s
        next if state[:seen].include?(id)

        state[:seen] << id
        events << record
      end
      state[:closure] = next_poll
      break unless result[:can_poll_more]
    end
    declared = field_names.call(runner.run(trigger[:output_fields], object_definitions))
    entry = (report['triggers'][key.to_s] ||= { 'rounds' => [], 'declared' => declared })
    entry['rounds'] << { 'polls' => polls, 'events' => events }
  end
end

poll_all.call(0)

connector.fetch(:triggers, {}).each do |key, trigger|
  hook = runner.run(trigger[:webhook_subscribe], plan['hookTarget'], connection, {}, nil)
  delivered = runner.run(trigger[:webhook_notification], {}, { 'data' => { 'id' => 'x_1' } })
  runner.run(trigger[:webhook_unsubscribe], hook)
  report['hooks'][key.to_s] = { 'id' => hook['id'], 'delivered' => delivered }
end

plan.fetch('actions', []).each do |step|
  action = connector[:actions][step['key'].to_sym] or raise "no action #{step['key']}"
  input_fields = runner.run(action[:input_fields], object_definitions)
  input = WorkatoSdk.convert(input_fields, step['input'])
  output = runner.run(action[:execute], connection, input)
  raise "#{step['key']}: an action's output must be a hash, not #{output.class}" unless output.is_a?(Hash)

  report['actions'][step['key']] = {
    'output' => output,
    'declared' => field_names.call(runner.run(action[:output_fields], object_definitions))
  }
end

poll_all.call(1)

File.write(report_file, JSON.generate(report))
