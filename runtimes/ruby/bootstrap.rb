# frozen_string_literal: true

# Stratus Ruby runtime bootstrap.
#
# A Lambda Runtime API (2018-06-01) client for Ruby handlers, behaving as AWS
# Lambda's Ruby runtime does as seen by user code:
#
# - Handlers `file.method` (a top-level method of `file.rb`) and
#   `file.Module::Class.method` (a class-level method); `file` may name a
#   sub-directory (`lib/handler.Foo::Bar.call`). The file is required once at
#   init with the task root on `$LOAD_PATH`; the method is called per event
#   with the keyword arguments `event:` and `context:`.
# - The result is sent as `result.to_json`; a `StringIO`/`IO` result is sent
#   as it is (`application/unknown`), as Lambda's marshaller does.
# - Errors as Lambda's Ruby runtime shapes them: `errorType` is
#   `Function<ErrorClass>` for an error raised by the handler and
#   `Init<ErrorClass>` for one raised while loading the file (`Init<LoadError>`
#   for a missing file, `Init<SyntaxError>`); `errorMessage` and `stackTrace`
#   (`file:line:in 'method'` strings, the runtime's own frames left out). The
#   report is also logged: "Error raised from handler method" and the JSON.
#   A `NoMethodError`/`NameError` (a wrong handler name among them) or an
#   exception that is not a `StandardError` is logged as Lambda's "Critical
#   exception from handler". As Lambda's runtime does, this one then exits (status
#   255, its `exit(-1)`) once the error is posted: the next invocation gets a fresh
#   environment (the scheduler dispatches an event no runtime fetched again).
# - `puts`/`print` and `$stderr` go to the function's log, one `puts` call one
#   log event even over several lines (as Lambda's Ruby runtime, which replaces
#   `Kernel#puts`, makes it); a `Logger` writing
#   to `$stdout`/`$stderr` gets Lambda's format
#   (`I, [2024-01-01T00:00:00.000000 #8]  INFO <request id> -- : message`), or
#   JSON with `AWS_LAMBDA_LOG_FORMAT=JSON`; `AWS_LAMBDA_LOG_LEVEL` sets their
#   level.
# - Gems: the function's `vendor/bundle/ruby/<version>` (what
#   `bundle install --deployment` lays out) is put first on `GEM_PATH`, then the
#   interpreter's own gem directories (where a system-installed AWS SDK lives).
#
# The Runtime API is reached over one keep-alive HTTP/1.1 connection (a
# plain socket; see Client); a request that finds a reused connection closed
# before any answer came is sent once more on a new one.
#
# Exit codes: 0 on SIGTERM; 1 after an init error (reported with
# /init/error) or when the Runtime API is unusable.

require 'json'
require 'socket'
require 'logger'
require 'stringio'

# Lambda's context object for Ruby handlers.
class LambdaContext
  attr_reader :aws_request_id, :invoked_function_arn, :log_group_name,
              :log_stream_name, :function_name, :memory_limit_in_mb,
              :function_version, :identity, :client_context, :deadline_ms,
              :tenant_id

  def initialize(request_id:, deadline_ms:, invoked_function_arn:, identity:,
                 client_context:, tenant_id: nil)
    @aws_request_id = request_id
    @deadline_ms = deadline_ms
    @invoked_function_arn = invoked_function_arn
    @identity = identity
    @client_context = client_context
    @tenant_id = tenant_id
    @log_group_name = ENV['AWS_LAMBDA_LOG_GROUP_NAME']
    @log_stream_name = ENV['AWS_LAMBDA_LOG_STREAM_NAME']
    @function_name = ENV['AWS_LAMBDA_FUNCTION_NAME']
    # A string, as in Lambda's Ruby runtime.
    @memory_limit_in_mb = ENV['AWS_LAMBDA_FUNCTION_MEMORY_SIZE']
    @function_version = ENV['AWS_LAMBDA_FUNCTION_VERSION']
  end

  def get_remaining_time_in_millis
    remaining = @deadline_ms - Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond)
    remaining.positive? ? remaining : 0
  end
end

module StratusRuntime
  API = '/2018-06-01/runtime'
  NEXT = "#{API}/invocation/next"
  ERROR_CT = 'application/vnd.aws.lambda.error+json'
  THIS_FILE = File.expand_path(__FILE__)
  # Error classes whose own name goes in Lambda-Runtime-Function-Error-Type;
  # any other is reported there as `Function<UserException>`, as Lambda does.
  NAMED_ERRORS = %w[ArgumentError NoMethodError Exception StandardError NameError
                    LoadError SystemExit SystemStackError].freeze

  # A failure to report: Lambda's error JSON plus the header's type.
  class Fault < StandardError
    attr_reader :body, :header_type

    def initialize(error, classification)
      klass = error.class.to_s
      type = "#{classification}<#{klass}>"
      @header_type = NAMED_ERRORS.include?(klass) ? type : "#{classification}<UserException>"
      @body = {
        errorMessage: StratusRuntime.text(error.message),
        errorType: type,
        stackTrace: StratusRuntime.user_frames(error)
      }
      super(@body[:errorMessage])
    end
  end

  # The Runtime API is unusable: the runtime ends.
  class ApiError < StandardError; end

  def self.text(value)
    value.to_s.encode('UTF-8', invalid: :replace, undef: :replace, replace: "\uFFFD")
  rescue StandardError
    '<unprintable>'
  end

  # The backtrace up to the first frame of this file (the runtime's own).
  def self.user_frames(error)
    frames = error.backtrace_locations || []
    out = []
    frames.first(100).each do |loc|
      path = loc.path.to_s
      break if loc.absolute_path == THIS_FILE || path == THIS_FILE
      # `require` as rubygems wraps it: the runtime's, not the function's.
      next if path.start_with?('<internal:') || path.end_with?('rubygems/core_ext/kernel_require.rb')

      out << text(loc.to_s)
    end
    out
  end

  # One log event: newlines inside it become '\r', as the log stream frames a
  # message (what Lambda's telemetry does with one `puts`).
  def self.log(message)
    $stdout.write(text(message).gsub(/\r?\n/, "\r") << "\n")
  rescue StandardError
    nil
  end

  def self.log_error(message, fault)
    log("#{message}\n#{JSON.pretty_generate(fault.body)}")
  end

  def self.warn(message)
    $stderr.write("stratus-ruby-runtime: #{message}\n")
  rescue StandardError
    nil
  end

  # One keep-alive HTTP/1.1 connection to the Runtime API, spoken directly over
  # a socket: the protocol is four fixed requests to one local server, and
  # net/http's general machinery cost several times the exchange itself per
  # invocation, which counts at a small function's share of a CPU. Responses
  # must carry Content-Length (the Runtime API always sends it).
  class Client
    HEAD_END = "\r\n\r\n"
    MAX_HEAD = 1024 * 1024

    def initialize(address)
      address = address.sub(%r{\Ahttp://}, '').split('/', 2).first
      if address.start_with?('[')
        host, _, port = address[1..].partition(']')
        port = port.delete_prefix(':')
      else
        host, _, port = address.rpartition(':')
        host, port = address, '80' if host.empty?
      end
      @host = host
      @port = Integer(port)
      @host_line = "Host: #{host.include?(':') ? "[#{host}]" : host}:#{@port}\r\n"
      @next_request = "GET #{NEXT} HTTP/1.1\r\n#{@host_line}\r\n".b.freeze
      @sock = nil
      @buf = String.new(encoding: Encoding::BINARY)
      # A whole response was read on this connection (it is a reused keep-alive
      # connection), and some answer to the current request came.
      @used = false
      @got = false
    end

    def open
      @sock = Socket.tcp(@host, @port)
      @sock.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
      @sock.sync = true
      @buf = String.new(encoding: Encoding::BINARY)
      @used = false
    end

    def close
      @sock&.close
    rescue StandardError
      nil
    ensure
      @sock = nil
      @buf = String.new(encoding: Encoding::BINARY)
      @used = false
    end

    def fill(want)
      data = @sock.readpartial(want < 65_536 ? 65_536 : want)
      @got = true
      @buf << data
    end

    # Sends one request (head and body); returns [status, headers, body] with
    # header names lower-cased.
    def exchange(head, body)
      open unless @sock
      body.empty? ? @sock.write(head) : @sock.write(head, body)
      until (at = @buf.index(HEAD_END))
        raise ApiError, 'Runtime API response head larger than 1 MB' if @buf.bytesize > MAX_HEAD

        fill(65_536)
      end
      lines = @buf.byteslice(0, at).split("\r\n")
      first = lines.shift.to_s
      status = first[%r{\AHTTP/1\.\d (\d{3})}, 1]
      raise ApiError, "malformed response from the Runtime API: #{first[0, 200].inspect}" unless status

      headers = {}
      lines.each do |line|
        name, value = line.split(':', 2)
        headers[name.strip.downcase] = value.strip if value
      end
      length = headers['content-length']
      raise ApiError, 'Runtime API response without a valid Content-Length' unless length&.match?(/\A\d+\z/)

      start = at + HEAD_END.bytesize
      stop = start + length.to_i
      fill(stop - @buf.bytesize) while @buf.bytesize < stop
      body = @buf.byteslice(start, length.to_i)
      @buf = @buf.byteslice(stop, @buf.bytesize - stop)
      @used = true
      close if headers['connection']&.casecmp?('close')
      [status.to_i, headers, body]
    end

    def request(what, head, body = '')
      retried = false
      begin
        reused = !@sock.nil? && @used
        @got = false
        exchange(head, body)
      rescue EOFError, IOError, SystemCallError, SocketError => e
        got = @got
        close
        raise ApiError, "Runtime API request failed (#{what}): #{e.class}: #{e.message}" if got || !reused || retried

        # An idle keep-alive connection the server closed before reading the
        # request: nothing was processed, send it again on a new connection.
        retried = true
        retry
      end
    end

    def next_invocation
      status, headers, body = request("GET #{NEXT}", @next_request)
      raise ApiError, "GET #{NEXT} returned #{status}: #{body[0, 500]}" unless status == 200

      [headers, body]
    end

    def post(path, body, content_type, error_type = nil)
      head = +"POST #{path} HTTP/1.1\r\n#{@host_line}Content-Type: #{content_type}\r\n"
      if error_type
        head << "Lambda-Runtime-Function-Error-Type: #{error_type.to_s.encode('ASCII', undef: :replace, invalid: :replace).tr("\r\n", '  ')}\r\n"
      end
      head << "Content-Length: #{body.bytesize}\r\n\r\n"
      status, _, data = request("POST #{path}", head.b, body)
      # 413: the response was too large; the server already answers the caller
      # with Function.ResponseSizeTooLarge, as Lambda does.
      StratusRuntime.warn("POST #{path} returned #{status}: #{data[0, 500]}") unless (200..299).cover?(status) || status == 413
    end

    def segment(id)
      id.b.gsub(/[^A-Za-z0-9\-_.!~*'()]/n) { |c| format('%%%02X', c.ord) }
    end

    def respond(request_id, body, content_type)
      post("#{API}/invocation/#{segment(request_id)}/response", body, content_type)
    end

    def fail(request_id, fault)
      post("#{API}/invocation/#{segment(request_id)}/error",
           JSON.generate(fault.body), ERROR_CT, fault.header_type)
    end

    def init_error(fault)
      post("#{API}/init/error", JSON.generate(fault.body), ERROR_CT, fault.header_type)
    end
  end

  # Lambda's text format for a Logger on stdout/stderr.
  class TextFormatter < Logger::Formatter
    def call(severity, time, progname, msg)
      line = format('%<s>s, [%<t>s #%<p>d] %<sev>5s %<id>s -- %<prog>s: %<msg>s',
                    s: severity[0], t: time.strftime('%Y-%m-%dT%H:%M:%S.%6N'), p: Process.pid,
                    sev: severity, id: $_global_aws_request_id, prog: progname, msg: msg2str(msg))
      "#{StratusRuntime.text(line).gsub(/\r?\n/, "\r")}\n"
    end
  end

  # Lambda's JSON format (`AWS_LAMBDA_LOG_FORMAT=JSON`).
  class JsonFormatter < Logger::Formatter
    def call(severity, time, progname, msg)
      payload = {
        timestamp: time.utc.strftime('%Y-%m-%dT%H:%M:%S.%6NZ'),
        level: severity,
        message: StratusRuntime.text(msg.is_a?(Exception) ? msg.message : msg2str(msg)),
        requestId: $_global_aws_request_id
      }
      payload[:logger] = StratusRuntime.text(progname) unless progname.nil? || progname.to_s.empty?
      if msg.is_a?(Exception)
        payload[:errorType] = msg.class.to_s
        payload[:errorMessage] = StratusRuntime.text(msg.message)
        payload[:stackTrace] = Array(msg.backtrace).map { |l| StratusRuntime.text(l) }
      end
      "#{JSON.generate(payload.compact)}\n"
    end
  end

  LOG_LEVELS = {
    'TRACE' => Logger::DEBUG, 'DEBUG' => Logger::DEBUG, 'INFO' => Logger::INFO,
    'WARN' => Logger::WARN, 'ERROR' => Logger::ERROR, 'FATAL' => Logger::FATAL
  }.freeze

  # Loggers created on stdout or stderr log in Lambda's format.
  module LoggerPatch
    def initialize(logdev, *args, **opts)
      super
      return unless logdev.equal?($stdout) || logdev.equal?($stderr) ||
                    logdev.equal?(STDOUT) || logdev.equal?(STDERR)

      self.formatter = StratusRuntime.logger_formatter if opts[:formatter].nil?
      level = LOG_LEVELS[ENV['AWS_LAMBDA_LOG_LEVEL'].to_s.strip.upcase]
      self.level = level if level && opts[:level].nil?
    end
  end

  def self.logger_formatter
    ENV['AWS_LAMBDA_LOG_FORMAT'].to_s.casecmp?('json') ? JsonFormatter.new : TextFormatter.new
  end

  # `Kernel#puts` as Lambda's Ruby runtime has it: one call, one log event (the
  # lines of a multi-line message joined by '\r', which the log stream keeps
  # in one event). Only this method: `$stdout.puts`, `print` and `$stderr` are
  # written as they are.
  def self.patch_puts
    Kernel.module_eval do
      def puts(*args)
        return $stdout.write("\n") && nil if args.empty?

        lines = args.flatten.map { |a| (a.nil? ? '' : a.to_s).chomp("\n") }
        $stdout.write(StratusRuntime.text(lines.join("\n")).gsub(/\r?\n/, "\r") << "\n")
        nil
      end
      private :puts
    end
  end

  # The function's bundled gems first, then the interpreter's.
  def self.setup_gems(task_root)
    ours = RbConfig::CONFIG['ruby_version']
    dirs = Dir.glob(File.join(task_root, 'vendor', 'bundle', 'ruby', '*')).select { |d| File.directory?(d) }
    dirs = dirs.partition { |d| File.basename(d) == ours }.flatten
    gem_path = dirs + Gem.default_path.reject { |d| dirs.include?(d) }
    ENV['GEM_PATH'] = gem_path.join(File::PATH_SEPARATOR)
    Gem.clear_paths
  end

  # The handler string → [file, class name or nil, method].
  def self.parse_handler(spec)
    parts = spec.to_s.split('.')
    case parts.size
    when 2 then [parts[0], nil, parts[1]]
    when 3 then parts
    else
      raise ArgumentError,
            "Invalid handler #{parts}, must be of form FILENAME.METHOD or FILENAME.CLASS.METHOD " \
            'where FILENAME corresponds with an existing Ruby source file FILENAME.rb, CLASS is an ' \
            'optional module/class namespace and METHOD is a callable method. If using CLASS, METHOD ' \
            'must be a class-level method.'
    end
  end

  def self.parse_json_header(value)
    return nil if value.nil? || value.empty?

    JSON.parse(value)
  rescue JSON::ParserError
    nil
  end

  def self.serve(client, klass, method)
    receiver = nil
    loop do
      headers, body = client.next_invocation
      request_id = headers['lambda-runtime-aws-request-id'].to_s
      raise ApiError, "GET #{NEXT} response without Lambda-Runtime-Aws-Request-Id" if request_id.empty?

      $_global_aws_request_id = request_id
      trace = headers['lambda-runtime-trace-id']
      trace ? ENV['_X_AMZN_TRACE_ID'] = trace : ENV.delete('_X_AMZN_TRACE_ID')
      context = LambdaContext.new(
        request_id: request_id,
        deadline_ms: headers['lambda-runtime-deadline-ms'].to_i,
        invoked_function_arn: headers['lambda-runtime-invoked-function-arn'],
        identity: parse_json_header(headers['lambda-runtime-cognito-identity']),
        client_context: parse_json_header(headers['lambda-runtime-client-context']),
        tenant_id: headers['lambda-runtime-aws-tenant-id']
      )
      body.force_encoding(Encoding::UTF_8)
      critical = false
      begin
        event = headers['content-type'].to_s.start_with?('application/json') ? JSON.parse(body) : body
        receiver ||= klass ? Object.const_get(klass) : TOPLEVEL_BINDING.receiver
        result = receiver.__send__(method, event: event, context: context)
        out, type = case result
                    when StringIO then [result.string, 'application/unknown']
                    when IO then [result.read, 'application/unknown']
                    else [result.to_json, 'application/json']
                    end
      rescue NoMethodError, NameError => e
        fault = Fault.new(e, 'Function')
        critical = true
      rescue StandardError => e
        fault = Fault.new(e, 'Function')
      rescue Exception => e # rubocop:disable Lint/RescueException -- as Lambda: any exception is the handler's
        fault = Fault.new(e, 'Function')
        critical = true
      end
      $stdout.flush
      $stderr.flush
      if fault
        log_error(critical ? 'Critical exception from handler' : 'Error raised from handler method', fault)
        client.fail(request_id, fault)
        if critical
          $stdout.flush
          $stderr.flush
          exit!(255)
        end
      else
        client.respond(request_id, out, type)
      end
      event = result = out = fault = context = nil
    end
  end

  def self.main
    $stdout.sync = true
    $stderr.sync = true
    Signal.trap('TERM') do
      $stdout.flush
      $stderr.flush
      exit!(0)
    end
    address = ENV['AWS_LAMBDA_RUNTIME_API'].to_s
    if address.empty?
      warn('AWS_LAMBDA_RUNTIME_API is not set')
      exit!(1)
    end
    task_root = ENV['LAMBDA_TASK_ROOT'] || Dir.pwd
    $LOAD_PATH.unshift(task_root) unless $LOAD_PATH.include?(task_root)
    setup_gems(task_root)
    Logger.prepend(LoggerPatch)
    patch_puts
    client = Client.new(address)
    handler = ENV['_HANDLER'].to_s
    begin
      file, klass, method = parse_handler(handler)
      require file
    rescue Exception => e # rubocop:disable Lint/RescueException -- LoadError, SyntaxError and anything the file raises
      fault = Fault.new(e, 'Init')
      log_error("Init error when loading handler #{handler}", fault)
      begin
        client.init_error(fault)
      rescue ApiError => err
        warn(err.message)
      end
      $stdout.flush
      exit!(1)
    end
    serve(client, klass, method)
  rescue ApiError => e
    warn(e.message)
    $stdout.flush
    exit!(1)
  end
end

StratusRuntime.main if $PROGRAM_NAME == __FILE__
