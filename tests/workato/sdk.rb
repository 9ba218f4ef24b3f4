# A small interpreter of the Workato connector SDK, as its documentation describes it, enough to
# run a connector's connection test, pick lists, triggers, actions and schemas against a live
# server:
#
# - a connector is a Ruby hash of lambdas, run with the SDK's methods in scope;
# - `get(url, params)`, `post(url, payload)`, `patch`, `put`, `delete` build a request that is
#   sent when its response is read, or when the lambda returns it; `.params`, `.headers`,
#   `.payload` and `.after_response` change it first; a relative URL is put after `base_uri`;
#   `authorization.apply` adds its headers to every request; a status of 400 or more raises
#   unless `after_response` reads it;
# - `error(message)` stops the lambda with that message;
# - `poll(connection, input, closure)` returns `{ events:, next_poll:, can_poll_more: }`; the
#   platform stores `next_poll` and gives it back as the next closure (a stored timestamp comes
#   back as a Time, as Workato does); `dedup` keeps an event from starting a job twice;
# - `convert_input` converts an input field's text to its type before `execute` sees it;
# - the ActiveSupport methods connectors use: `presence`, `present?`, `blank?`, `to_time`,
#   `1.hour.ago`, `iso8601`.

require 'cgi'
require 'json'
require 'net/http'
require 'time'
require 'uri'

class Object
  def blank?
    respond_to?(:empty?) ? empty? : !self
  end

  def present?
    !blank?
  end

  def presence
    present? ? self : nil
  end
end

class String
  def blank?
    strip.empty?
  end

  def to_time
    Time.iso8601(self)
  rescue ArgumentError
    Time.parse(self)
  end
end

class Time
  def blank?
    false
  end
end

class Integer
  # A length of time, as `1.hour` is.
  Duration = Struct.new(:seconds) do
    def ago
      Time.now - seconds
    end
  end

  def hour
    Duration.new(self * 3600)
  end
  alias hours hour

  def minutes
    Duration.new(self * 60)
  end
end

module WorkatoSdk
  # An HTTP error the SDK raises for a status of 400 or more.
  class HttpError < StandardError
    attr_reader :status, :body

    def initialize(method, url, status, body)
      super("#{method.upcase} #{url}: #{status} #{body}")
      @status = status
      @body = body
    end
  end

  # A request the connector builds: sent the first time its response is read.
  class Request
    def initialize(runner, method, url, params: {}, payload: nil)
      @runner = runner
      @method = method
      @url = url
      @params = params || {}
      @payload = payload
      @headers = {}
      @after = nil
    end

    def params(more)
      @params = @params.merge(more || {})
      self
    end

    def headers(more)
      @headers = @headers.merge(more || {})
      self
    end

    def payload(more)
      @payload = more
      self
    end

    def after_response(&block)
      @after = block
      self
    end

    def response
      return @response if defined?(@response)

      code, body, headers = @runner.send_request(@method, @url, @params, @headers, @payload)
      if @after
        @response = @after.call(code, body, headers)
      elsif code >= 400
        raise HttpError.new(@method, @url, code, body)
      else
        @response = body
      end
    end

    def [](key)
      response[key]
    end

    def method_missing(name, *args, &block)
      response.respond_to?(name) ? response.public_send(name, *args, &block) : super
    end

    def respond_to_missing?(name, include_private = false)
      response.respond_to?(name, include_private) || super
    end
  end

  # The methods a connector's lambdas call, and the log of the requests they sent.
  class Runner
    attr_reader :log

    def initialize(connector, connection)
      @connector = connector
      @connection = connection
      @log = []
    end

    # Runs a lambda of the connector with the SDK in scope; a request it returns is sent.
    def run(lam, *args)
      args = args.first(lam.arity) if lam.arity >= 0
      resolve(instance_exec(*args, &lam))
    end

    def get(url, params = {})
      Request.new(self, 'get', url, params: params)
    end

    def post(url, payload = nil)
      Request.new(self, 'post', url, payload: payload)
    end

    def patch(url, payload = nil)
      Request.new(self, 'patch', url, payload: payload)
    end

    def put(url, payload = nil)
      Request.new(self, 'put', url, payload: payload)
    end

    def delete(url, payload = nil)
      Request.new(self, 'delete', url, payload: payload)
    end

    # The SDK's way for a lambda to fail with a message.
    def error(message)
      raise message.to_s
    end

    # Inside `authorization.apply`: the headers every request gets.
    def headers(more)
      @auth_headers = (@auth_headers || {}).merge(more)
    end

    def send_request(method, url, params, headers, payload)
      uri = URI(absolute(url))
      query = URI.encode_www_form(params.compact.map { |k, v| [k.to_s, v.to_s] })
      uri.query = [uri.query, query].compact.reject(&:empty?).join('&') unless query.empty?
      request = Net::HTTP.const_get(method.capitalize).new(uri)
      auth_headers.merge(headers).each { |name, value| request[name.to_s] = value.to_s }
      unless payload.nil?
        request['Content-Type'] = 'application/json'
        request.body = JSON.generate(payload)
      end
      response = Net::HTTP.start(uri.host, uri.port, use_ssl: uri.scheme == 'https') { |http| http.request(request) }
      code = response.code.to_i
      body = response.body.to_s.empty? ? nil : (JSON.parse(response.body) rescue response.body)
      query_sent = URI.decode_www_form(uri.query.to_s).to_h
      @log << { 'method' => method.upcase, 'path' => uri.path, 'query' => query_sent, 'status' => code }
      [code, body, response.to_hash]
    end

    private

    def resolve(value)
      value.is_a?(Request) ? value.response : value
    end

    def absolute(url)
      return url if url.start_with?('http://', 'https://')

      base_uri = @connector[:connection][:base_uri]
      base = base_uri ? run(base_uri, @connection) : ''
      "#{base}#{url}"
    end

    def auth_headers
      @auth_headers = {}
      apply = @connector.dig(:connection, :authorization, :apply)
      instance_exec(@connection, &apply) if apply
      @auth_headers
    end
  end

  TIMESTAMP = /\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})\z/.freeze

  # What the platform keeps of a closure between polls: JSON, with timestamps given back as times.
  def self.stored(closure)
    revive = lambda do |value|
      case value
      when Hash then value.transform_values { |v| revive.call(v) }
      when Array then value.map { |v| revive.call(v) }
      when TIMESTAMP then Time.iso8601(value)
      else value
      end
    end
    revive.call(JSON.parse(JSON.generate([closure])).first)
  end

  # An input converted as its field's `convert_input` says.
  def self.convert(fields, input)
    input.to_h do |key, value|
      field = fields.find { |f| f[:name].to_s == key }
      [key, field && value.is_a?(String) ? convert_value(field[:convert_input], value) : value]
    end
  end

  def self.convert_value(conversion, text)
    case conversion
    when 'integer_conversion' then text.strip.match?(/\A[+-]?\d+\z/) ? text.to_i : text
    when 'float_conversion' then Float(text, exception: false) || text
    when 'boolean_conversion'
      return true if %w[true yes y on 1 t].include?(text.strip.downcase)
      return false if %w[false no n off 0 f].include?(text.strip.downcase)

      text
    when 'render_iso8601_timestamp' then text.to_time.iso8601
    else text
    end
  end
end
