-- A headless LÖVE 11 project: no window, no graphics, audio or joysticks; only the frame loop,
-- love.timer and love.event, which is all txaio needs.
function love.conf(t)
  t.identity = "txaio-love-check"
  t.version = "11.0"
  t.console = false
  t.window = false
  t.modules.window = false
  t.modules.graphics = false
  t.modules.audio = false
  t.modules.sound = false
  t.modules.joystick = false
  t.modules.touch = false
  t.modules.video = false
  t.modules.image = false
  t.modules.font = false
  t.modules.physics = false
  t.modules.mouse = false
  t.modules.keyboard = false
end
